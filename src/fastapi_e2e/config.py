"""What the user configures (E2EConfig) and the run's resolved options (Settings).

E2EConfig comes from the user's ``e2e_config`` fixture; Settings are the command line,
environment and ini values, resolved once with the place each value came from.
Precedence: E2EConfig > command line > environment > ini > default.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sqlalchemy.engine import URL

from fastapi_e2e.database.urls import parse_server_url
from fastapi_e2e.errors import ConfigError

Source = Literal["E2EConfig", "command line", "environment", "ini", "default"]

DEFAULT_LIFESPAN_TIMEOUT = 10.0


@dataclass(frozen=True)
class E2EConfig:
    """How the harness finds and prepares the app under test.

    Import strings (``"package.module:attr"``) are resolved lazily, after the test
    database exists and ``database_url_env`` is set, so apps that build their engine
    at import time from an environment variable see the test database.
    """

    app: Any
    """The app: a FastAPI instance, a factory returning one, or an import string."""
    session_dependency: Callable[..., Any] | str | None = None
    """The dependency the app's routes use to get a session; overridden per test."""
    metadata: Any = None
    """SQLAlchemy ``MetaData`` (or import string) created once per run with create_all."""
    alembic_ini: str | Path | None = None
    """Path to ``alembic.ini``: migrations run to head once per run instead of metadata."""
    sessionmakers: Sequence[Any] = ()
    """``async_sessionmaker`` objects (or import strings) the app uses outside DI."""
    database_url_env: str | None = None
    """Environment variable set to the test database URL before the app is built."""
    lifespan_timeout: float | None = None
    """Seconds allowed for the app's startup and shutdown; None uses the option."""
    session_options: Mapping[str, Any] | None = None
    """Options (e.g. ``expire_on_commit``) for the sessions the overridden dependency
    yields. None: those of the sessionmaker the dependency's code uses, else of the
    first of ``sessionmakers``, else ``expire_on_commit=False``."""

    def __post_init__(self) -> None:
        if self.app is None:
            raise ConfigError(
                "E2EConfig.app is None. Pass the app, its factory, or an import string "
                "such as 'myapp.main:create_app'."
            )
        if self.metadata is not None and self.alembic_ini is not None:
            raise ConfigError(
                "E2EConfig has both metadata and alembic_ini set; the schema must come "
                "from one of them. Keep alembic_ini if your migrations are the source of "
                "truth, metadata otherwise."
            )
        if isinstance(self.sessionmakers, (str, bytes)):
            raise ConfigError(
                f"E2EConfig.sessionmakers is the string {self.sessionmakers!r}; it must be "
                f"a list, e.g. sessionmakers=[{self.sessionmakers!r}]."
            )
        if self.lifespan_timeout is not None:
            check_timeout(self.lifespan_timeout, "E2EConfig.lifespan_timeout")


def check_timeout(value: float, source: str) -> float:
    """Return ``value`` if it is a usable timeout in seconds, else raise ConfigError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{source} is {value!r}; it must be a number of seconds, e.g. 10.")
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{source} is {value!r}; it must be a positive number of seconds.")
    return float(value)


@dataclass(frozen=True)
class Setting:
    """One resolved value and where it came from."""

    value: Any
    source: Source


@dataclass(frozen=True)
class Settings:
    """The run's options, resolved once at configure time."""

    db_url: Setting = field(default_factory=lambda: Setting(None, "default"))
    pg_bindir: Setting = field(default_factory=lambda: Setting(None, "default"))
    lifespan_timeout: Setting = field(
        default_factory=lambda: Setting(DEFAULT_LIFESPAN_TIMEOUT, "default")
    )
    cache_dir: Setting = field(default_factory=lambda: Setting(None, "default"))
    create_db: Setting = field(default_factory=lambda: Setting(False, "default"))

    def server_url(self) -> URL | None:
        """The existing server to use, as an asyncpg URL; None for the embedded cluster.

        Raises ConfigError (with the value's source, password not shown) if unusable.
        """
        if self.db_url.value is None:
            return None
        return parse_server_url(
            str(self.db_url.value), f"the database URL from {self.db_url.source}"
        )


@dataclass(frozen=True)
class Option:
    """An option's names and help text, shared by the command line flag and ini key."""

    dest: str
    help: str
    env: str | None = None
    flag_only: bool = False
    """A switch (``--e2e-create-db``): true when given, else the ini's boolean."""

    @property
    def flag(self) -> str:
        return "--" + self.dest.replace("_", "-")


OPTIONS = (
    Option(
        "e2e_db_url",
        "URL of an existing PostgreSQL server to create the test databases on "
        "(only admin statements run on the given database). Default: start an "
        "embedded throwaway cluster.",
        env="E2E_DATABASE_URL",
    ),
    Option(
        "e2e_pg_bindir",
        "Directory holding the PostgreSQL server binaries for the embedded cluster. "
        "Default: search pg_config, PATH and the usual install locations.",
        env="PG_BINDIR",
    ),
    Option(
        "e2e_lifespan_timeout",
        f"Seconds allowed for the app's lifespan startup and shutdown "
        f"(default {DEFAULT_LIFESPAN_TIMEOUT:g}).",
    ),
    Option(
        "e2e_cache_dir",
        "Directory for the embedded cluster's cache (a data directory holding the "
        "schema templates, restored instead of running initdb and migrations). "
        "Default: $XDG_CACHE_HOME/pytest-fastapi-e2e or ~/.cache/pytest-fastapi-e2e.",
        env="E2E_CACHE_DIR",
    ),
    Option(
        "e2e_create_db",
        "Rebuild the schema template even if one for the current schema is cached "
        "(for migrations whose effect depends on more than their files).",
        flag_only=True,
    ),
)


def resolve_settings(
    cli: Mapping[str, Any], env: Mapping[str, str], ini: Mapping[str, Any]
) -> Settings:
    """Resolve each option from the command line, environment and ini, in that order.

    A value counts as given when it is not None: an empty string from the
    environment is a (bad) value, reported as such, not a silent "unset".
    """
    resolved: dict[str, Setting] = {}
    for option in OPTIONS:
        key = option.dest.removeprefix("e2e_")
        candidates: list[tuple[Any, Source]] = [(cli.get(option.dest), "command line")]
        if option.env is not None:
            candidates.append((env.get(option.env), "environment"))
        candidates.append((ini.get(option.dest), "ini"))
        for value, source in candidates:
            if value is not None:
                resolved[key] = Setting(value, source)
                break
    if "create_db" in resolved:
        value = resolved["create_db"].value
        if isinstance(value, str):  # from an ini file read without a type
            value = value.strip().lower() in {"1", "true", "yes", "on"}
        resolved["create_db"] = Setting(bool(value), resolved["create_db"].source)
    settings = Settings(**resolved)
    timeout = settings.lifespan_timeout
    if timeout.source != "default":
        try:
            number = float(timeout.value)
        except (TypeError, ValueError):
            raise ConfigError(
                f"e2e_lifespan_timeout from {timeout.source} is {timeout.value!r}; it must "
                "be a number of seconds, e.g. 10."
            ) from None
        check_timeout(number, f"e2e_lifespan_timeout from {timeout.source}")
        settings = dataclasses.replace(settings, lifespan_timeout=Setting(number, timeout.source))
    return settings
