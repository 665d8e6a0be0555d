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
from typing import TYPE_CHECKING, Any, Literal

from fastapi_e2e.errors import BAD_FLAG, BAD_INI_VALUE, BAD_TRACE_MODE, ConfigError

if TYPE_CHECKING:  # SQLAlchemy is imported only when a URL is given
    from sqlalchemy.engine import URL

Source = Literal["E2EConfig", "command line", "environment", "ini", "default"]

DEFAULT_LIFESPAN_TIMEOUT = 10.0
TRACE_MODES = ("off", "retain-on-failure", "on")
DEFAULT_TRACE_DIR = ".e2e-traces"
APP_ROLE_AUTO = "auto"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


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
    extensions: Sequence[str] = ()
    """PostgreSQL extensions (``citext``, ``pgcrypto``...) created in the schema template
    before the schema is built; part of the template's cache key."""
    setup_sql: str | None = None
    """SQL run in the template before the extensions and the schema (roles, schemas,
    functions the migrations expect); part of the template's cache key."""
    seed_files: Sequence[str | Path] = ()
    """Data files (JSON, YAML, CSV: table name to rows) loaded into the schema template
    after the schema: reference data every test sees, whose contents are part of the
    template's cache key. Relative paths are taken from the current directory."""
    sessionmakers: Sequence[Any] = ()
    """``async_sessionmaker`` objects (or import strings) the app uses outside DI."""
    database_url_env: str | None = None
    """Environment variable set to the test database's URL (``{url}``) when the run
    starts; the same as ``env={name: "{url}"}``."""
    env: Mapping[str, str] | None = None
    """Environment variables the app's settings read, each a template of the test
    database's address: ``{url}``, ``{driver}``, ``{host}``, ``{port}``, ``{user}``,
    ``{password}``, ``{database}``. Set when the run starts and restored at its end;
    the ``e2e_env`` ini key sets them before the conftests are imported."""
    lifespan_timeout: float | None = None
    """Seconds allowed for the app's startup and shutdown; None uses the option."""
    base_url: str | None = None
    """The ``client``'s base URL (default ``http://testserver``); its host reaches the
    app as the ``Host`` header (for ``TrustedHostMiddleware``) and its path is the prefix
    of relative request URLs (``http://testserver/v1``)."""
    headers: Mapping[str, str] | None = None
    """Headers the ``client`` sends with every request (a request's own win)."""
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
        if isinstance(self.extensions, (str, bytes)) or not all(
            isinstance(name, str) and name for name in self.extensions
        ):
            raise ConfigError(
                f"E2EConfig.extensions is {self.extensions!r}; it must be a list of "
                "extension names, e.g. extensions=['citext', 'pgcrypto']."
            )
        if isinstance(self.seed_files, (str, bytes, Path)):
            raise ConfigError(
                f"E2EConfig.seed_files is {self.seed_files!r}; it must be a list of "
                f"paths, e.g. seed_files=[{str(self.seed_files)!r}]."
            )
        if self.env is not None:
            from fastapi_e2e.database.address import check_env_templates

            check_env_templates(self.env, "E2EConfig.env")
        if self.base_url is not None:
            check_base_url(self.base_url)
        if self.headers is not None and not all(
            isinstance(k, str) and isinstance(v, str) for k, v in dict(self.headers).items()
        ):
            raise ConfigError(
                f"E2EConfig.headers is {self.headers!r}; it must map header names to "
                "string values, e.g. headers={'content-type': 'application/json'}."
            )

    def environment_templates(self) -> dict[str, str]:
        """``database_url_env`` and ``env`` together, as name to template."""
        return environment_templates(self.database_url_env, self.env)


def environment_templates(
    database_url_env: str | None, env: Mapping[str, str] | None
) -> dict[str, str]:
    """The variables to set, name to template: ``env``'s, and ``{url}`` for
    ``database_url_env`` (``env`` wins for the same name)."""
    templates = {} if database_url_env is None else {database_url_env: "{url}"}
    templates.update(env or {})
    return templates


@dataclass(frozen=True)
class IniField:
    """An E2EConfig field that can also be set as an ini key (``e2e_<field>``)."""

    field: str
    kind: Literal["string", "args", "linelist"]
    help: str
    example: str

    @property
    def key(self) -> str:
        return "e2e_" + self.field


INI_FIELDS = (
    IniField(
        "app",
        "string",
        "The app: import string of a FastAPI app or factory (E2EConfig.app).",
        'e2e_app = "myapp.main:app"',
    ),
    IniField(
        "metadata",
        "string",
        "Import string of the SQLAlchemy MetaData the schema is created from (E2EConfig.metadata).",
        'e2e_metadata = "myapp.models:Base.metadata"',
    ),
    IniField(
        "alembic_ini",
        "string",
        "Path to alembic.ini, relative to the ini file: "
        "migrations build the schema (E2EConfig.alembic_ini).",
        'e2e_alembic_ini = "alembic.ini"',
    ),
    IniField(
        "extensions",
        "args",
        "PostgreSQL extensions created in the schema template (E2EConfig.extensions).",
        'e2e_extensions = ["citext", "pgcrypto"]',
    ),
    IniField(
        "setup_sql",
        "string",
        "SQL run in the template before the schema is built (E2EConfig.setup_sql).",
        'e2e_setup_sql = "CREATE SCHEMA billing"',
    ),
    IniField(
        "seed_files",
        "args",
        "Data files (JSON, YAML, CSV), relative to the ini file, loaded into the schema "
        "template as reference data (E2EConfig.seed_files).",
        'e2e_seed_files = ["tests/data/countries.csv"]',
    ),
    IniField(
        "session_dependency",
        "string",
        "Import string of the dependency that yields "
        "the app's sessions, a hint for db_session (E2EConfig.session_dependency).",
        'e2e_session_dependency = "myapp.db:get_session"',
    ),
    IniField(
        "sessionmakers",
        "args",
        "Import strings of the app's async_sessionmakers (E2EConfig.sessionmakers).",
        'e2e_sessionmakers = ["myapp.db:SessionLocal"]',
    ),
    IniField(
        "database_url_env",
        "string",
        "Environment variable set to the test "
        "database's URL before the conftests are imported (E2EConfig.database_url_env).",
        'e2e_database_url_env = "DATABASE_URL"',
    ),
    IniField(
        "env",
        "linelist",
        "NAME=template lines: environment variables set before the "
        "conftests are imported, templates of the test database's address with "
        "{url} {driver} {host} {port} {user} {password} {database} (E2EConfig.env).",
        'e2e_env = ["DATABASE__HOST={host}", "DATABASE__PORT={port}"]',
    ),
    IniField(
        "base_url",
        "string",
        "The client's base URL; its host is sent as the Host header (E2EConfig.base_url).",
        'e2e_base_url = "http://localhost/v1"',
    ),
    IniField(
        "headers",
        "linelist",
        "'Name: value' lines: headers the client sends with every request (E2EConfig.headers).",
        'e2e_headers = ["Content-Type: application/json"]',
    ),
)


def config_from_ini(read: Callable[[str], Any], base_dir: Path) -> dict[str, Any]:
    """The E2EConfig fields set by ini keys, converted (relative paths from ``base_dir``).

    Raises ConfigError naming the key on a bad value.
    """
    values: dict[str, Any] = {}
    for ini in INI_FIELDS:
        raw = read(ini.key)
        if raw is None or raw == "" or raw == []:
            continue
        if ini.field == "alembic_ini":
            values["alembic_ini"] = str(base_dir / str(raw))
        elif ini.field == "seed_files":
            values["seed_files"] = tuple(str(base_dir / str(path)) for path in raw)
        elif ini.field == "env":
            from fastapi_e2e.database.address import parse_env_lines

            values["env"] = parse_env_lines(list(raw), f"the ini key {ini.key}")
        elif ini.field == "headers":
            values["headers"] = _parse_headers(list(raw), ini)
        elif ini.kind == "args":
            values[ini.field] = tuple(raw)
        else:
            values[ini.field] = str(raw).strip()
    if "metadata" in values and "alembic_ini" in values:
        raise ConfigError(
            "The ini keys e2e_metadata and e2e_alembic_ini are both set; the schema must "
            "come from one of them. Keep e2e_alembic_ini if your migrations are the source "
            "of truth, e2e_metadata otherwise."
        )
    return values


def _parse_headers(lines: list[str], ini: IniField) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise ConfigError(
                BAD_INI_VALUE.format(
                    key=ini.key,
                    value=line,
                    why="each line must be 'Name: value'",
                    example=ini.example,
                )
            )
        headers[name.strip()] = value.strip()
    return headers


def with_ini(config: E2EConfig, ini: Mapping[str, Any]) -> E2EConfig:
    """``config`` with the fields it leaves unset taken from the ini keys: a conftest's
    E2EConfig wins field by field (its schema source as a whole), and the environment
    variables of both are set (E2EConfig's template wins for the same name)."""
    changes: dict[str, Any] = {}
    ini_templates = environment_templates(ini.get("database_url_env"), ini.get("env"))
    if ini_templates and (config.env is not None or config.database_url_env is not None):
        changes["env"] = {**ini_templates, **environment_templates(None, config.env)}
        ini = {k: v for k, v in ini.items() if k not in ("env", "database_url_env")}
    for name, value in ini.items():
        if name in ("metadata", "alembic_ini") and (
            config.metadata is not None or config.alembic_ini is not None
        ):
            continue
        if getattr(config, name) in (None, ()):
            changes[name] = value
    return dataclasses.replace(config, **changes) if changes else config


def check_base_url(value: object) -> str:
    """Return ``value`` if it is an absolute http(s) URL, else raise ConfigError."""
    text = value if isinstance(value, str) else ""
    scheme, sep, rest = text.partition("://")
    if not sep or scheme not in ("http", "https") or not rest or rest.startswith("/"):
        raise ConfigError(
            f"E2EConfig.base_url is {value!r}; it must be an absolute http or https URL "
            "with a host, e.g. 'http://localhost/v1' (the host is sent as the Host header)."
        )
    return text


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
    trace: Setting = field(default_factory=lambda: Setting("off", "default"))
    trace_dir: Setting = field(default_factory=lambda: Setting(DEFAULT_TRACE_DIR, "default"))
    strict_server_errors: Setting = field(default_factory=lambda: Setting(False, "default"))
    no_deferred_check: Setting = field(default_factory=lambda: Setting(False, "default"))
    app_role: Setting = field(default_factory=lambda: Setting(None, "default"))
    keep_failed: Setting = field(default_factory=lambda: Setting(False, "default"))

    def server_url(self) -> URL | None:
        """The existing server to use, as an asyncpg URL; None for the embedded cluster.

        Raises ConfigError (with the value's source, password not shown) if unusable.
        """
        if self.db_url.value is None:
            return None
        from fastapi_e2e.database.urls import parse_server_url

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
    """A command-line switch taking no value (the ini key takes true/false)."""

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
    Option(
        "e2e_trace",
        "Write a trace file (JSON and HTML: requests, server tracebacks, SQL, logs) per "
        "test: off, retain-on-failure (only failed tests) or on (default off). The "
        "report of a failing test shows the same things either way.",
    ),
    Option(
        "e2e_trace_dir",
        f"Directory for trace files (default {DEFAULT_TRACE_DIR}; one subdirectory per "
        "xdist worker).",
    ),
    Option(
        "e2e_strict_server_errors",
        "Fail a test that passed while the app raised an exception behind a 5xx "
        "response or one that escaped the app (default: such tests pass).",
        flag_only=True,
    ),
    Option(
        "e2e_no_deferred_check",
        "Do not check deferred constraints when the app commits and at the end of each "
        "test (default: checked, as production's COMMIT does).",
        flag_only=True,
    ),
    Option(
        "e2e_app_role",
        f"Run the app's work in tests as a role without superuser rights, so row-level "
        f"security applies: {APP_ROLE_AUTO!r} (a role the harness creates for the run, "
        "granted use of the test database's schemas, tables and sequences) or the name "
        "of an existing role. Default: the harness's own role.",
    ),
    Option(
        "e2e_keep_failed",
        "Keep the database of a failed commits-mode test (@pytest.mark.e2e_commits) and "
        "print its URL and a psql line in the report; the next run's start-up drops "
        "kept databases unless it is given this option too (default: dropped).",
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
    trace = settings.trace
    if trace.value not in TRACE_MODES:
        raise ConfigError(
            BAD_TRACE_MODE.format(
                source=trace.source, value=trace.value, choices=", ".join(TRACE_MODES)
            )
        )
    role = settings.app_role
    if role.value is not None and not str(role.value).strip():
        raise ConfigError(
            f"e2e_app_role from {role.source} is empty; give {APP_ROLE_AUTO!r} or the "
            "name of an existing role, or leave it unset to run the app as the harness's role."
        )
    for name in ("strict_server_errors", "create_db", "no_deferred_check", "keep_failed"):
        flag = getattr(settings, name)
        if not isinstance(flag.value, bool):
            text = str(flag.value).strip().lower()
            if text not in _TRUE + _FALSE:
                raise ConfigError(
                    BAD_FLAG.format(name=f"e2e_{name}", source=flag.source, value=flag.value)
                )
            settings = dataclasses.replace(settings, **{name: Setting(text in _TRUE, flag.source)})
    return settings
