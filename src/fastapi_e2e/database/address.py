"""The test database's address, settled before any server or database exists, and the
environment variables rendered from it for the app's settings.

Settled early (before the first conftest is imported) so that an app whose settings
are read at import time, by a conftest or a test module at collection, reads the test
values. Imports nothing heavy: this runs in every pytest run that configures it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import socket
import string
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from urllib.parse import parse_qs, quote, unquote, urlsplit

from fastapi_e2e.errors import BAD_ENV_TEMPLATE, ConfigError

TEMPLATE_FIELDS = ("url", "driver", "host", "port", "user", "password", "database")
DEFAULT_DRIVER = "postgresql+asyncpg"
LOOPBACK = "127.0.0.1"
EMBEDDED_USER = "postgres"
DATABASE_PREFIX = "e2e_"
HANDOFF_ENV = "FASTAPI_E2E_ADDRESS"
"""Set by an xdist controller for its workers (they inherit its environment): the
embedded cluster's host, port and password, so every worker renders the same ones."""


@dataclass(frozen=True)
class Address:
    """Where the test database will be: host, TCP port, user, password and name."""

    host: str
    port: int
    user: str
    password: str | None
    database: str
    driver: str = DEFAULT_DRIVER

    def url(self) -> str:
        """The database's URL with its password, as an app reads it from its settings."""
        auth = quote(self.user, safe="")
        if self.password is not None:
            auth += ":" + quote(self.password, safe="")
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.host.startswith("/"):  # a socket directory: libpq's query form
            return f"{self.driver}://{auth}@/{self.database}?host={self.host}&port={self.port}"
        return f"{self.driver}://{auth}@{host}:{self.port}/{self.database}"

    def values(self) -> dict[str, str]:
        """What each ``{field}`` of an ``env`` template renders as."""
        return {
            "url": self.url(),
            "driver": self.driver,
            "host": self.host,
            "port": str(self.port),
            "user": self.user,
            "password": self.password or "",
            "database": self.database,
        }

    def environment(self, templates: Mapping[str, str]) -> dict[str, str]:
        """The variables ``templates`` (name to template) render as at this address."""
        values = self.values()
        return {name: template.format_map(values) for name, template in templates.items()}


def check_env_templates(templates: object, source: str) -> dict[str, str]:
    """``templates`` as a name-to-template dict, or ConfigError naming what is wrong."""
    if not isinstance(templates, Mapping):
        raise _bad_template(source, repr(templates), "it is not a mapping of names to templates")
    checked: dict[str, str] = {}
    for name, template in templates.items():
        shown = f"{name}={template!r}"
        why: str | None
        if not isinstance(name, str) or not name or "=" in name:
            why = "a variable name must be a non-empty string without '='"
        elif not isinstance(template, str):
            why = "the template must be a string"
        else:
            why = _template_problem(template)
        if why is not None:
            raise _bad_template(source, shown, why)
        checked[name] = template
    return checked


def _bad_template(source: str, value: str, why: str) -> ConfigError:
    return ConfigError(
        BAD_ENV_TEMPLATE.format(
            source=source, value=value, why=why, fields=", ".join(TEMPLATE_FIELDS)
        )
    )


def _template_problem(template: str) -> str | None:
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        return f"it is not a valid template ({exc}; write a literal brace as {{{{ or }}}})"
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        if field not in TEMPLATE_FIELDS:
            return f"{{{field}}} is not a field of the address"
        if spec or conversion:
            return f"{{{field}}} takes no format spec or conversion"
    return None


def parse_env_lines(lines: list[str], source: str) -> dict[str, str]:
    """``NAME={template}`` lines (an ini ``linelist``) as a name-to-template dict."""
    templates: dict[str, str] = {}
    for line in lines:
        name, sep, template = line.partition("=")
        if not sep or not name.strip():
            raise _bad_template(source, repr(line), "each line must be NAME=template")
        templates[name.strip()] = template.strip()
    return check_env_templates(templates, source)


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def _database_name(worker: str | None) -> str:
    return f"{DATABASE_PREFIX}{secrets.token_hex(4)}" + (f"_{worker}" if worker else "")


def settle(server_url: str | None, worker: str | None) -> Address:
    """The address of this process's test database.

    On the embedded cluster: 127.0.0.1, a free port and a new password (the cluster
    listens there, with scram-sha-256), unless this is an xdist worker of a controller
    that settled them. On a given server: its host, port and credentials.
    """
    if server_url is not None:
        return _on_server(server_url, _database_name(worker))
    handed = _handed_off() if worker is not None else None
    if handed is not None:
        return dataclasses.replace(handed, database=_database_name(worker))
    return Address(
        host=LOOPBACK,
        port=free_loopback_port(),
        user=EMBEDDED_USER,
        password=secrets.token_urlsafe(18),
        database=_database_name(worker),
    )


def _on_server(server_url: str, database: str) -> Address:
    parts = urlsplit(server_url)
    query = parse_qs(parts.query)
    host = parts.hostname or (query.get("host") or ["localhost"])[0]
    port_text = query.get("port", [""])[0]
    try:
        port = parts.port or (int(port_text) if port_text else 5432)
    except ValueError:
        port = 5432  # the URL itself is validated, with a clear error, at configure time
    return Address(
        host=host,
        port=port,
        user=unquote(parts.username or "postgres"),
        password=unquote(parts.password) if parts.password is not None else None,
        database=database,
    )


def hand_off(address: Address) -> dict[str, str]:
    """The environment an xdist controller gives its workers (see HANDOFF_ENV)."""
    shared = asdict(address)
    del shared["database"]
    shared["owner"] = os.getpid()
    return {HANDOFF_ENV: json.dumps(shared)}


def _handed_off() -> Address | None:
    """The controller's address, if this process is an xdist worker it started."""
    try:
        shared = json.loads(os.environ[HANDOFF_ENV])
        if shared.pop("owner") != os.getppid():
            return None  # inherited from some other pytest (e.g. one that runs pytester)
        return Address(database="", **shared)
    except (KeyError, ValueError, TypeError, AttributeError):
        return None
