"""What production's COMMIT and fresh connections do that one rolled-back transaction
would not: the statements ``TestTransaction`` adds, and the run's role for the app.

- Deferred constraints are checked at COMMIT, which never comes: ``CHECK_DEFERRED``
  checks them inside the app's savepoint before its RELEASE, and at the end of a test.
- ``SET LOCAL``/``set_config(..., true)`` outlive a RELEASE: the values a savepoint
  overwrites are read first (``setting_names``) and put back after it (``restore``).
- Superusers bypass row-level security: ``AppRole`` makes a role that owns nothing,
  which the app's savepoints switch to.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.engine import URL

from fastapi_e2e.config import APP_ROLE_AUTO
from fastapi_e2e.errors import APP_ROLE_MISSING, ConfigError

MARK = "/* e2e */ "
"""Prefix of the harness's own statements: recorded, but not counted by e2e_queries."""

# SET CONSTRAINTS ALL IMMEDIATE checks every pending deferred event now and raises the
# error COMMIT would. Run in a PL/pgSQL block's subtransaction that is then rolled
# back, so each constraint returns to the mode it had (its declared one, or what the
# app set): SET CONSTRAINTS ALL DEFERRED would also defer INITIALLY IMMEDIATE ones.
# The events it checked become pending again, to be checked again at the next check.
CHECK_DEFERRED = (
    MARK + "DO $e2e$ BEGIN BEGIN SET CONSTRAINTS ALL IMMEDIATE; RAISE SQLSTATE 'E2E00'; "
    "EXCEPTION WHEN SQLSTATE 'E2E00' THEN NULL; END; END $e2e$"
)
UNLOCK_ADVISORY = MARK + "SELECT pg_advisory_unlock_all()"
HAS_DEFERRABLE = "SELECT EXISTS (SELECT FROM pg_trigger WHERE tgdeferrable)"

SESSION_STATE = re.compile(r"advisory|set_config|\bSET\s+LOCAL\b", re.IGNORECASE)
"""A statement that may take an advisory lock or set a setting (cheap pre-filter)."""
_ADVISORY = re.compile(r"advisory", re.IGNORECASE)
_SET_LOCAL = re.compile(
    r"\bSET\s+LOCAL\s+(?!TRANSACTION\b|SESSION\b)(\"[^\"]+\"|[\w.]+)", re.IGNORECASE
)
# The setting's name: a literal, or asyncpg's $n, or psycopg's %(name)s, or :name.
_SET_CONFIG = re.compile(
    r"\bset_config\s*\(\s*(?:'((?:[^']|'')*)'|\$(\d+)|%\((\w+)\)s|:(\w+))", re.IGNORECASE
)
DDL = re.compile(
    r"(?:\s+|--[^\n]*|/\*.*?\*/)*(CREATE|ALTER|DROP|TRUNCATE|COMMENT|REINDEX)\b",
    re.IGNORECASE | re.DOTALL,
)
TEST_ROLE = re.compile(
    r"\s*(?:SET\s+(?:SESSION\s+|LOCAL\s+)?ROLE\s+(\"[^\"]+\"|\w+)|RESET\s+ROLE\b)", re.IGNORECASE
)


def takes_advisory_lock(sql: str) -> bool:
    return _ADVISORY.search(sql) is not None


def setting_names(sql: str, params: Any) -> list[str]:
    """The settings a statement sets with SET LOCAL or set_config, as far as its text
    (and its parameters, for a bound name) tells."""
    names = [_unquote(m.group(1)) for m in _SET_LOCAL.finditer(sql)]
    for match in _SET_CONFIG.finditer(sql):
        literal, number, pyformat, named = match.groups()
        name: Any = None
        if literal is not None:
            name = literal.replace("''", "'")
        elif number is not None and isinstance(params, Sequence) and not isinstance(params, str):
            index = int(number) - 1
            name = params[index] if 0 <= index < len(params) else None
        elif isinstance(params, Mapping):
            name = params.get(pyformat if pyformat is not None else named)
        if isinstance(name, str) and name:
            names.append(name)
    return names


def read_settings(names: Sequence[str]) -> str:
    """A query of the current values of ``names`` (NULL for a setting never defined)."""
    return MARK + "SELECT " + ", ".join(f"current_setting({literal(n)}, true)" for n in names)


def restore(saved: Mapping[str, str | None], role: str | None) -> str | None:
    """The statement putting ``saved`` settings back (and the role, last), if any."""
    parts = [
        f"set_config({literal(name)}, {literal(value)}, true)" for name, value in saved.items()
    ]
    if role is not None:
        parts.append(f"set_config('role', {literal(role)}, true)")
    return MARK + "SELECT " + ", ".join(parts) if parts else None


def role_of_statement(match: re.Match[str]) -> str:
    """The role a ``SET ROLE``/``RESET ROLE`` the test ran switches to."""
    return _unquote(match.group(1)) if match.group(1) is not None else "none"


def set_role(role: str) -> str:
    return f"{MARK}SET LOCAL ROLE {identifier(role)}"


def literal(value: str | None) -> str:
    if value is None:
        return "NULL"
    return "'" + value.replace("'", "''") + "'"


def identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _unquote(name: str) -> str:
    return name[1:-1].replace('""', '"') if name.startswith('"') else name.lower()


async def has_deferrable_constraints(url: URL) -> bool:
    """Whether any constraint of the database can be deferred (else nothing to check)."""
    from fastapi_e2e.database.provision import connect_admin

    connection = await connect_admin(url)
    try:
        return bool(await connection.fetchval(HAS_DEFERRABLE))
    finally:
        await connection.close()


class AppRole:
    """The run's role for the app: made for the run (``auto``) or the user's, checked.

    ``async with AppRole(url, "auto") as role:`` creates a role that owns nothing, may
    not log in and bypasses nothing, granted use of every schema, table, sequence and
    function of the test database (and of what the harness's role creates there
    later), and lets the harness's role switch to it; dropped at the end.
    """

    def __init__(self, url: URL, wanted: str) -> None:
        self.url = url
        self.wanted = wanted
        self.name = f"{url.database}_app" if wanted == APP_ROLE_AUTO else wanted
        self.created = False

    async def __aenter__(self) -> AppRole:
        from fastapi_e2e.database.provision import connect_admin

        connection = await connect_admin(self.url)
        try:
            if self.wanted != APP_ROLE_AUTO:
                if not await connection.fetchval(
                    "SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)", self.name
                ):
                    raise ConfigError(APP_ROLE_MISSING.format(role=self.name))
                return self
            role = identifier(self.name)
            await connection.execute(
                f"CREATE ROLE {role} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS"
            )
            self.created = True
            await connection.execute(_GRANTS.replace("$role$", literal(self.name)))
            await connection.execute(
                f"GRANT {role} TO CURRENT_USER; "
                f"GRANT CONNECT, TEMPORARY ON DATABASE {identifier(str(self.url.database))} "
                f"TO {role}"
            )
        finally:
            await connection.close()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if not self.created:
            return
        from fastapi_e2e.database.provision import connect_admin

        connection = await connect_admin(self.url)
        try:
            role = identifier(self.name)
            await connection.execute(f"DROP OWNED BY {role}; DROP ROLE {role}")
        finally:
            await connection.close()


# Every schema but the system's: use, and every right on what is in it now and on what
# the harness's role creates there later (a table a test creates is its own business).
_GRANTS = """
DO $e2e$
DECLARE
    s text;
    r text := $role$;
BEGIN
    FOR s IN SELECT nspname FROM pg_namespace
             WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'
    LOOP
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', s, r);
        EXECUTE format(
            'GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER '
            'ON ALL TABLES IN SCHEMA %I TO %I', s, r);
        EXECUTE format('GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA %I TO %I', s, r);
        EXECUTE format('GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA %I TO %I', s, r);
        EXECUTE format(
            'ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT, INSERT, UPDATE, DELETE, '
            'TRUNCATE, REFERENCES, TRIGGER ON TABLES TO %I', s, r);
        EXECUTE format(
            'ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT USAGE, SELECT, UPDATE '
            'ON SEQUENCES TO %I', s, r);
    END LOOP;
END
$e2e$
"""
