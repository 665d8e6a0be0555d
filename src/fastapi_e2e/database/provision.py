"""Create the run's test database from a cached schema template, and drop it at the end.

The given server database is used only for admin statements. Every database the
harness creates is named ``e2e_...`` and carries a COMMENT saying who made it;
nothing else on the server is created, altered, truncated or dropped.

Templates (``e2e_tpl_<schema key>``) outlive the run: they are the schema cache.
Runs that need the same template take turns with a PostgreSQL advisory lock, so
xdist workers and concurrent runs on one server build it once between them.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import os
import re
import secrets
import socket
import time
from collections.abc import Callable
from typing import Protocol

import asyncpg
from sqlalchemy.engine import URL

from fastapi_e2e import compat
from fastapi_e2e.database.urls import asyncpg_connect_kwargs, mask
from fastapi_e2e.errors import (
    NO_CREATEDB,
    SERVER_AUTH_FAILED,
    SERVER_UNREACHABLE,
    DatabaseSetupError,
)

CONNECT_TIMEOUT = 10.0
NAME_PREFIX = "e2e_"
TEMPLATE_PREFIX = "e2e_tpl_"
COMMENT_PREFIX = "pytest-fastapi-e2e"
_TEST_DB_COMMENT = re.compile(r"test database of pid (\d+) on (\S+),")
_BUILT_BY = re.compile(r"built by run (\w+)")


class SchemaSource(Protocol):
    """Where the schema comes from: a key that changes when it does, and a builder."""

    description: str

    def key(self) -> str:
        """A fingerprint of everything that defines the schema."""
        ...

    async def build(self, url: URL) -> None:
        """Create the schema in the (empty) database at ``url``."""
        ...


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def connect_admin(url: URL, timeout: float = CONNECT_TIMEOUT) -> asyncpg.Connection:
    """Connect to the admin database, turning failures into one clear error."""
    kwargs = asyncpg_connect_kwargs(url)
    try:
        # The harness's own admin work: past the run's guard on raw app connections.
        connect = compat.original_asyncpg_connect()
        return await asyncio.wait_for(connect(**kwargs, timeout=timeout), timeout)
    except (
        asyncpg.InvalidPasswordError,
        asyncpg.InvalidAuthorizationSpecificationError,
    ) as exc:
        raise DatabaseSetupError(SERVER_AUTH_FAILED.format(url=mask(url), cause=exc)) from None
    except (OSError, TimeoutError, asyncio.TimeoutError, asyncpg.PostgresError) as exc:
        cause = str(exc) or type(exc).__name__
        raise DatabaseSetupError(
            SERVER_UNREACHABLE.format(url=mask(url), timeout=timeout, cause=cause)
        ) from None


class TestDatabase:
    """A test database cloned from the schema template, which is built if missing.

    ``async with TestDatabase(admin_url, schema) as db:`` finds or builds
    ``db.template_name`` (named by the schema's key and the server's major version),
    clones ``db.url`` from it, and on exit drops the clone (unless ``drop=False``,
    for a throwaway cluster). ``rebuild=True`` rebuilds the template once per
    ``run_id`` (xdist workers share one). Before all that, unless
    ``clean_stale=False`` (a cluster of our own has none), test databases of runs
    that died on this host are dropped, and (unless ``drop_kept=False``) the
    databases earlier runs kept for failed commits-mode tests.
    """

    __test__ = False  # not a pytest test class, despite the name

    def __init__(
        self,
        admin_url: URL,
        schema: SchemaSource | None,
        *,
        drop: bool = True,
        rebuild: bool = False,
        run_id: str | None = None,
        label: str = "",
        clean_stale: bool = True,
        name: str | None = None,
        drop_kept: bool = True,
    ) -> None:
        self.admin_url = admin_url
        self.drop_kept = drop_kept
        self.schema = schema
        self.drop = drop
        self.rebuild = rebuild
        self.clean_stale = clean_stale
        self.run_id = run_id or secrets.token_hex(4)
        suffix = f"_{label}" if label else ""
        self.name = name or f"{NAME_PREFIX}{secrets.token_hex(4)}{suffix}"
        self.template_name = ""
        self.template_reused = False
        self.stale_dropped: list[str] = []
        self.kept_dropped: list[str] = []
        self.timings: dict[str, float] = {}
        self._created = False

    @property
    def url(self) -> URL:
        return self.admin_url.set(database=self.name)

    @property
    def template_url(self) -> URL:
        return self.admin_url.set(database=self.template_name)

    async def __aenter__(self) -> TestDatabase:
        admin = await connect_admin(self.admin_url)
        try:
            if self.clean_stale:
                self.stale_dropped = await drop_stale_databases(admin)
                if self.drop_kept:
                    self.kept_dropped = await drop_kept_databases(admin, self.run_id)
            started = time.perf_counter()
            key = self.schema.key() if self.schema is not None else "no schema"
            version = admin.get_server_version().major
            digest = hashlib.sha256(f"{key}|postgres {version}".encode()).hexdigest()[:16]
            self.template_name = f"{TEMPLATE_PREFIX}{digest}"
            self.timings["schema key"] = time.perf_counter() - started
            lock = _lock_id(self.template_name)
            await admin.execute("SELECT pg_advisory_lock($1)", lock)
            try:
                started = time.perf_counter()
                await self._ensure_template(admin)
                self.timings["template"] = time.perf_counter() - started
                started = time.perf_counter()
                await self._create(admin, self.name, self.template_name)
                self._created = True
                comment = f"{COMMENT_PREFIX} test database of {stamp()}; dropped at its end"
                await comment_database(admin, self.name, comment)
                self.timings["clone"] = time.perf_counter() - started
            finally:
                await admin.execute("SELECT pg_advisory_unlock($1)", lock)
        except BaseException:
            if self._created and not admin.is_closed():
                await drop_database(admin, self.name)
            raise
        finally:
            if not admin.is_closed():
                await admin.close()
        return self

    async def _ensure_template(self, admin: asyncpg.Connection) -> None:
        """Reuse the finished template, or (re)build it; the caller holds the lock."""
        row = await admin.fetchrow(
            "SELECT datistemplate, shobj_description(oid, 'pg_database') AS comment "
            "FROM pg_database WHERE datname = $1",
            self.template_name,
        )
        if row is not None and row["datistemplate"]:
            built_by = _BUILT_BY.search(row["comment"] or "")
            this_run = built_by is not None and built_by.group(1) == self.run_id
            if not self.rebuild or this_run:  # rebuilt once per run, by the first worker
                self.template_reused = True
                return
        if row is not None:  # half-built by a run that died, or to be rebuilt
            await drop_database(admin, self.template_name)
        await self._create(admin, self.template_name, None)
        try:
            if self.schema is not None:
                await self.schema.build(self.template_url)
            # No connections: one (a GUI left open on it) would make every clone fail.
            await admin.execute(
                f"ALTER DATABASE {_quote(self.template_name)} "
                "WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"
            )
            # Connections the build left open (a sync engine's pool in env.py, which
            # nothing disposes) would make every clone fail; they are the build's own.
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = $1 AND pid <> pg_backend_pid()",
                self.template_name,
            )
        except BaseException:
            await drop_database(admin, self.template_name)
            raise
        what = self.schema.description if self.schema is not None else "no schema"
        await comment_database(
            admin,
            self.template_name,
            f"{COMMENT_PREFIX} schema template ({what}) built by run {self.run_id} of "
            f"{stamp()}; kept as a cache between runs, safe to drop",
        )

    async def _create(self, admin: asyncpg.Connection, name: str, template: str | None) -> None:
        await create_database(admin, self.admin_url, name, template)

    async def __aexit__(self, *exc_info: object) -> None:
        if not self.drop or not self._created:
            return
        admin = await connect_admin(self.admin_url)
        try:
            await drop_database(admin, self.name)
        finally:
            await admin.close()


async def create_database(
    admin: asyncpg.Connection, admin_url: URL, name: str, template: str | None
) -> None:
    """``CREATE DATABASE name`` (a clone of ``template`` if given), turning a missing
    CREATEDB privilege into one clear error."""
    statement = f"CREATE DATABASE {_quote(name)}"
    if template is not None:
        statement += f" TEMPLATE {_quote(template)}"
        # FILE_COPY copies the few files of a small template instead of WAL-logging
        # every block (the PostgreSQL 15 default), which is much faster here.
        if admin.get_server_version().major >= 15:
            statement += " STRATEGY FILE_COPY"
    try:
        await admin.execute(statement)
    except asyncpg.InsufficientPrivilegeError as exc:
        user = admin_url.username or "(default user)"
        raise DatabaseSetupError(
            NO_CREATEDB.format(user=user, url=mask(admin_url), cause=exc)
        ) from None


def stamp() -> str:
    """Who made a database, and when: the part of its COMMENT the stale sweep reads."""
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return f"pid {os.getpid()} on {socket.gethostname()}, created {now}"


def kept_comment(run_id: str, nodeid: str) -> str:
    """The COMMENT of a failed commits-mode test's database kept for inspection (no
    longer a "test database of pid ...": the stale sweep must leave it)."""
    return (
        f"{COMMENT_PREFIX} kept database (run {run_id}) of failed test {nodeid}; "
        f"{stamp()}; dropped at the start of a later run without --e2e-keep-failed"
    )


_KEPT = re.compile(re.escape(COMMENT_PREFIX) + r" kept database \(run (\w+)\)")


async def drop_kept_databases(admin: asyncpg.Connection, run_id: str) -> list[str]:
    """Drop the databases earlier runs kept for failed tests (not this run's own)."""

    def doomed(comment: str) -> bool:
        match = _KEPT.match(comment)
        return match is not None and match.group(1) != run_id

    return await _drop_test_databases_if(admin, doomed)


async def _drop_test_databases_if(
    admin: asyncpg.Connection, doomed: Callable[[str], bool]
) -> list[str]:
    """Drop the harness's non-template databases whose COMMENT ``doomed`` accepts."""
    rows = await admin.fetch(
        "SELECT datname, shobj_description(oid, 'pg_database') AS comment FROM pg_database "
        "WHERE datname LIKE 'e2e\\_%' AND NOT datistemplate"
    )
    dropped = []
    for row in rows:
        if not doomed(row["comment"] or ""):
            continue
        try:
            await drop_database(admin, row["datname"], template=False)
        except asyncpg.PostgresError:
            continue  # another role's, or being dropped by a concurrent run
        dropped.append(row["datname"])
    return dropped


async def drop_stale_databases(admin: asyncpg.Connection) -> list[str]:
    """Drop test databases whose run died on this host (its pid is gone); return their names.

    Only databases whose COMMENT says this harness made them for a pid on this host
    are considered, so other hosts' runs and anybody else's databases are safe. One
    process sweeps at a time (xdist workers start together); the others skip it.
    """
    if not await admin.fetchval("SELECT pg_try_advisory_lock($1)", _lock_id(_SWEEP_LOCK)):
        return []
    try:
        return await _drop_stale_databases(admin)
    finally:
        await admin.execute("SELECT pg_advisory_unlock($1)", _lock_id(_SWEEP_LOCK))


_SWEEP_LOCK = "e2e stale database sweep"


async def _drop_stale_databases(admin: asyncpg.Connection) -> list[str]:
    host = socket.gethostname()

    def doomed(comment: str) -> bool:
        match = _TEST_DB_COMMENT.search(comment)
        if not comment.startswith(COMMENT_PREFIX) or match is None:
            return False
        return match.group(2) == host and not pid_alive(int(match.group(1)))

    return await _drop_test_databases_if(admin, doomed)


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _lock_id(name: str) -> int:
    """A stable 64-bit advisory lock key for ``name``."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


async def comment_database(admin: asyncpg.Connection, name: str, text: str) -> None:
    """Set a database's COMMENT (quoted name, escaped text)."""
    literal = text.replace("'", "''")
    await admin.execute(f"COMMENT ON DATABASE {_quote(name)} IS '{literal}'")


async def drop_database(admin: asyncpg.Connection, name: str, *, template: bool = True) -> None:
    """Drop ``name`` (a template too, unless ``template`` is false), disconnecting
    whoever is connected to it."""
    force = " WITH (FORCE)" if admin.get_server_version().major >= 13 else ""
    if template:  # a template cannot be dropped while it is marked as one
        await admin.execute(f"ALTER DATABASE {_quote(name)} IS_TEMPLATE false")
    await admin.execute(f"DROP DATABASE IF EXISTS {_quote(name)}{force}")
