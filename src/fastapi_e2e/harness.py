"""The harness's two lifetimes: the run (database, schema, engine, app) and one test.

``E2ERun`` is entered once per pytest session on the pinned loop; ``E2ETest`` once per
test. Neither knows about pytest, so both can be driven directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import time
import weakref
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any
from unittest import mock

import httpx
from fastapi import FastAPI
from sqlalchemy import pool
from sqlalchemy.engine import URL, Engine
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from fastapi_e2e.client.app import AppUnderTest
from fastapi_e2e.client.sync import LoopTransport
from fastapi_e2e.client.transport import StreamingASGITransport
from fastapi_e2e.config import E2EConfig, Settings
from fastapi_e2e.database import (
    datafiles,
    guard,
    parity,
    registration,
    schema,
    seeds,
    sessions,
    wiring,
)
from fastapi_e2e.database.address import Address, settle
from fastapi_e2e.database.binaries import find_binaries
from fastapi_e2e.database.cache import SnapshotCache, default_cache_dir
from fastapi_e2e.database.cluster import EmbeddedCluster
from fastapi_e2e.database.commits import OwnDatabase
from fastapi_e2e.database.gate import app_code
from fastapi_e2e.database.pool import DatabasePool
from fastapi_e2e.database.provision import SchemaSource, TestDatabase
from fastapi_e2e.database.transaction import TestTransaction
from fastapi_e2e.database.urls import mask
from fastapi_e2e.database.warm import WarmConnections
from fastapi_e2e.diagnosis import record
from fastapi_e2e.errors import (
    COMMITS_IN_SEED_GROUP,
    COMMITS_WITH_APP_ROLE,
    SEED_SCOPE_ORDER,
    ConfigError,
    E2EError,
)
from fastapi_e2e.importing import resolve

if TYPE_CHECKING:  # the xdist module imports this one
    from fastapi_e2e.xdist import WorkerInfo

# Parsed once: httpx re-parses a str base_url for every client (one client per test).
BASE_URL = httpx.URL("http://testserver")


class E2ERun:
    """Everything that lives for the whole run, built in dependency order.

    The schema source, app and sessionmakers are imported only after the test
    database exists and ``database_url_env`` points at it.
    """

    def __init__(
        self,
        config: E2EConfig,
        settings: Settings,
        worker: WorkerInfo | None = None,
        address: Address | None = None,
    ) -> None:
        self.config = config
        self.settings = settings
        self.worker = worker
        self.address = address or settle(
            str(settings.db_url.value) if settings.db_url.value is not None else None,
            worker.name if worker is not None else None,
        )
        """Where the test database will be, settled before the server starts: the
        embedded cluster's TCP port and password, and the database's name."""
        self.timings: dict[str, float] = {}
        self.description = ""
        self.cluster: EmbeddedCluster | None = None
        self.recording_limits = record.Limits()
        self.base_url = httpx.URL(config.base_url) if config.base_url is not None else BASE_URL
        # Off only to measure what recording costs (benchmarks/run.py); not an option.
        self.recording_on = os.environ.get("E2E_RECORDING", "on") != "off"
        self.pool: DatabasePool | None = None
        """Databases for commits-mode tests: made by the first such test."""
        self._commits_engine: AsyncEngine | None = None
        self.keep_failed = bool(settings.keep_failed.value)

    async def __aenter__(self) -> E2ERun:
        self._stack = AsyncExitStack()
        await self._stack.__aenter__()
        try:
            # The app's modules, its build, migrations and lifespan: all the app's code.
            with app_code():
                await self._start()
        except BaseException as exc:
            await self._stack.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stack.__aexit__(exc_type, exc, tb)

    async def _start(self) -> None:
        loop = type(asyncio.get_running_loop())
        self.loop_name = f"{loop.__module__}.{loop.__qualname__}"
        started = time.perf_counter()
        admin_url, embedded = await self._server()
        self.timings["server"] = time.perf_counter() - started
        if self.cluster is not None:
            source = "restored from cache" if self.cluster.restored else "initdb"
            self.description = (
                f"embedded cluster in {self.cluster.run_dir} ({self.cluster.binaries.bindir}, "
                f"{source})"
            )

        schema_source = self._schema_source()
        database = TestDatabase(
            admin_url,
            _BuiltThroughWiring(schema_source, self._environment)
            if schema_source is not None
            else None,
            drop=not embedded,
            clean_stale=not embedded,
            rebuild=bool(self.settings.create_db.value),
            run_id=self.worker.run_id if self.worker is not None else None,
            name=self.address.database,
            drop_kept=not self.keep_failed,
        )
        self.admin_url = admin_url
        self.embedded = embedded
        self.database = database
        self.url: URL = database.url
        # Every engine of the registered dialects connects here from now on, and
        # during a test into its transaction; entered before the database so that it
        # is left after the app's engines are disposed and before the database drops.
        self.test_code_url = self._test_code_url()
        self.wiring = self._stack.enter_context(wiring.Wiring(self.url, self.test_code_url))
        self._stack.enter_context(sessions.fresh_reads())
        self._stack.enter_context(guard.raw_connections_guarded())
        if templates := self.config.environment_templates():
            # Inline, not in a local: `pytest -l` would print a local with the password.
            self._stack.enter_context(
                mock.patch.dict(os.environ, self.address.environment(templates))
            )
        await self._stack.enter_async_context(database)
        self.timings.update(database.timings)
        self.check_deferred = not self.settings.no_deferred_check.value
        self.deferrable = self.check_deferred and await parity.has_deferrable_constraints(self.url)
        self.app_role: str | None = None
        if self.settings.app_role.value is not None:
            wanted = str(self.settings.app_role.value).strip()
            role = await self._stack.enter_async_context(parity.AppRole(self.url, wanted))
            self.app_role = role.name
        self._stack.push_async_callback(dispose_app_engines)

        registration.ensure()  # the app's engines are about to be made
        self.sessionmakers = [
            resolve(maker, "sessionmakers") for maker in self.config.sessionmakers
        ]
        for maker in self.sessionmakers:
            if not isinstance(maker, async_sessionmaker):
                raise ConfigError(
                    f"E2EConfig.sessionmakers contains {maker!r}, which is not a "
                    "sqlalchemy.ext.asyncio.async_sessionmaker. List the module-level "
                    "async_sessionmaker objects your app uses outside dependencies."
                )
        self.dependency = resolve(self.config.session_dependency, "session_dependency")
        if self.dependency is not None and not callable(self.dependency):
            raise ConfigError(
                f"E2EConfig.session_dependency resolved to {self.dependency!r}, which is not "
                "callable. Point it at the dependency function your routes use in Depends()."
            )

        started = time.perf_counter()
        timeout = (
            self.config.lifespan_timeout
            if self.config.lifespan_timeout is not None
            else self.settings.lifespan_timeout.value
        )
        self.app_under_test = await self._stack.enter_async_context(
            AppUnderTest(resolve(self.config.app, "app"), timeout)
        )
        self.timings["app"] = time.perf_counter() - started
        named = self.sessionmakers[0] if self.sessionmakers else None
        if named is None and self.dependency is not None:
            named = sessions.sessionmaker_used_by(self.dependency)
        app_string = self.config.app if isinstance(self.config.app, str) else ""
        self.make_session, self.session_source = sessions.test_session_factory(
            options=self.config.session_options,
            named=named,
            modules=sessions.app_modules(self.app_under_test.app, [app_string]),
        )
        self._root_engines: list[AsyncEngine] = []
        self._root: tuple[Callable[[], Engine | None], int, AsyncEngine] | None = None
        self._stack.push_async_callback(self._dispose_root_engines)
        self.seed_groups: list[seeds.SeedGroup] = []
        """The seed groups open now, widest first; a test runs in the last."""
        self.factories_bound = self._stack.enter_context(seeds.polyfactory_bound())
        # One connect per app engine now, so the tests' connections can copy the
        # driver arguments (connect_args, server_settings) the app's engine passes.
        for engine in wiring.app_engines():
            with contextlib.suppress(Exception):  # only a head start: a test reports it
                async with AsyncEngine(engine).connect():
                    pass

    async def commits_pool(self) -> DatabasePool:
        """The pool of databases for commits-mode tests, started on first use (a run
        without such tests never makes one); closed before the app's lifespan ends."""
        if self.pool is None:
            pool = DatabasePool(
                self.admin_url,
                self.database.template_name,
                self.url.database or "e2e",
                WarmConnections(),
                # The embedded cluster is thrown away after the run, databases and all.
                drop_on_exit=not self.embedded,
            )
            self.pool = await self._stack.enter_async_context(pool)
        return self.pool

    def commits_engine(self) -> AsyncEngine:
        """The harness's engine for commits-mode tests' db_session and db_connection: the
        app's driver and options, connecting wherever the wiring points (unpinned)."""
        if self._commits_engine is None:
            engine = _root_engine_like(wiring.primary_engine(), self.url)
            engine.sync_engine.dialect.e2e_role = "harness"  # type: ignore[attr-defined]
            self._root_engines.append(engine)
            self._commits_engine = engine
        return self._commits_engine

    def own_database_url(self, name: str) -> URL:
        """What a commits-mode test's code uses to reach its own database (any client)."""
        return self.test_code_url.set(database=name)

    def _test_code_url(self) -> URL:
        """What ``e2e_database_url`` gives the test code: on the embedded cluster the
        TCP address with the run's password, which any client (a DSN string, psql, a
        subprocess) can use; on a given server, the server's URL."""
        if self.settings.server_url() is not None:
            return self.url
        return URL.create(
            "postgresql+asyncpg",
            username=self.address.user,
            password=self.address.password,
            host=self.address.host,
            port=self.address.port,
            database=self.url.database,
        )

    def _environment(self, database: str) -> dict[str, str]:
        """The configured variables rendered for ``database``."""
        templates = self.config.environment_templates()
        return dataclasses.replace(self.address, database=database).environment(templates)

    def root_engine(self) -> AsyncEngine:
        """The harness's engine for tests' connections: the driver and options of the
        app's first engine (asyncpg when it has none yet), on the test database."""
        primary = wiring.primary_engine()
        version = getattr(primary.dialect, "e2e_connect_args_version", 0) if primary else 0
        cached = self._root
        if cached is not None and cached[0]() is primary and cached[1] == version:
            return cached[2]
        engine = _root_engine_like(primary, self.url)
        self._root_engines.append(engine)
        self._root = (
            weakref.ref(primary) if primary is not None else lambda: None,
            version,
            engine,
        )
        return engine

    @property
    def driver(self) -> str:
        primary = wiring.primary_engine()
        return primary.url.drivername if primary else "postgresql+asyncpg (no app engine yet)"

    async def _dispose_root_engines(self) -> None:
        for engine in self._root_engines:
            await engine.dispose()

    def summary(self) -> str:
        """One line on what the run reused or built, and how long each part took."""
        database = self.database
        template = "reused" if database.template_reused else "built"
        took = ", ".join(f"{part} {seconds:.2f} s" for part, seconds in self.timings.items())
        total = sum(self.timings.values())
        parts = [
            self.description,
            f"schema template {database.template_name} {template}",
            f"test database {self.url.database} via {self.driver}"
            + ("" if self.loop_name.startswith("asyncio.") else f" on event loop {self.loop_name}"),
            f"db_session: {self.session_source}",
            f"started in {total:.2f} s ({took})",
        ]
        if database.stale_dropped:
            parts.append(f"dropped {len(database.stale_dropped)} stale database(s) of dead runs")
        if database.kept_dropped:
            parts.append(f"dropped {len(database.kept_dropped)} database(s) kept by earlier runs")
        if self.pool is not None:
            pool = self.pool
            parts.append(
                f"commits mode: {pool.handed_out} test(s) on databases of their own, "
                f"{pool.waits} waited for one after the first ({pool.waited_seconds:.2f} s), "
                f"pool size {pool.target} (at most {pool.most_ready} ready), "
                f"{pool.made} made, {len(pool.kept)} kept"
            )
            if pool.warm is not None:
                warm = pool.warm
                parts.append(
                    f"connections for them: {warm.handed_ahead} opened ahead, "
                    f"{warm.opened_on_demand} on demand"
                    + (f" ({warm.not_opened_ahead} failed ahead)" if warm.not_opened_ahead else "")
                    + (f", warm-up off: {warm.warm_up_failed}" if warm.warm_up_failed else "")
                )
        if self.cluster is not None:
            parts.append(f"cluster cache: {self.cluster.cache_outcome}")
        if getattr(self, "factories_bound", False):
            parts.append("polyfactory's SQLAlchemyFactory persists through db_session")
        return "; ".join(parts)

    async def _server(self) -> tuple[URL, bool]:
        """The admin URL of the server to use, and whether it is our own cluster."""
        url = self.settings.server_url()
        if url is not None:
            self.description = f"{mask(url)} (from {self.settings.db_url.source})"
            return url, False
        if self.worker is not None and self.worker.uses_controller_cluster:
            # Started by the controller while this worker imported and collected.
            cluster_url = await self.worker.wait_for_cluster()
            self.description = f"embedded cluster of the xdist controller, {self.worker.name}"
            return cluster_url, False
        self.cluster = await self._stack.enter_async_context(
            start_cluster(self.settings, self.address)
        )
        return self.cluster.url, True

    def _schema_source(self) -> SchemaSource | None:
        source: SchemaSource | None = None
        if self.config.alembic_ini is not None:
            source = schema.AlembicSchema(self.config.alembic_ini)
        elif self.config.metadata is not None:
            source = schema.MetadataSchema(self.config.metadata)
        if self.config.extensions or self.config.setup_sql is not None:
            source = schema.WithPrerequisites(source, self.config.extensions, self.config.setup_sql)
        if self.config.seed_files:
            source = schema.WithSeedFiles(source, self.config.seed_files, self.config.metadata)
        return source

    # --- seed groups (database/seeds.py) -------------------------------------------

    async def open_seed_group(self, name: str, scope: str) -> seeds.SeedGroup:
        """A seed's group, inside the innermost one open (refused inside a narrower one)."""
        top = self.seed_groups[-1] if self.seed_groups else None
        if top is not None and top.rank > seeds.SCOPE_RANKS[scope]:
            raise E2EError(
                SEED_SCOPE_ORDER.format(
                    scope=scope, name=name, inner=top.name, inner_scope=top.scope
                )
            )
        group = await seeds.SeedGroup(self.root_engine(), top, name, scope).__aenter__()
        self.seed_groups.append(group)
        return group

    async def close_seed_group(self, group: seeds.SeedGroup) -> None:
        if group in self.seed_groups:
            self.seed_groups.remove(group)
        await group.__aexit__(None, None, None)

    async def populate(
        self,
        group: seeds.SeedGroup,
        files: Sequence[Path],
        seed: Callable[[E2ETest], Awaitable[Any]] | None,
    ) -> Any:
        """Write a group's rows: its data files, then its seed function, in a test of
        its own (the app's engines, db_session and a client all reach the group),
        whose savepoint is kept instead of rolled back."""
        test = await E2ETest(self, seeding=group).__aenter__()
        try:
            if files:
                metadata = await schema.tables_of(test.tx.connection, self.config.metadata)
                batches = [rows for path in files for rows in datafiles.read(path, metadata)]
                await test.tx.connection.run_sync(datafiles.insert_rows, batches)
            value = await seed(test) if seed is not None else None
            # The session's savepoint is released, not rolled back with its close: rows
            # added and not flushed are the seed's too.
            await test.tx.session.commit()
        except BaseException as exc:
            group.lost = f"its seed failed: {type(exc).__name__}"
            await test.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        await test.__aexit__(None, None, None)
        return value


class _BuiltThroughWiring:
    """The schema source, built with the wiring and the configured environment
    variables pointed at the template database.

    So an Alembic ``env.py`` that builds its engine from the app's settings, or
    imports the app's engine, migrates the template whatever URL it computed, and
    one that reads the URL from the environment (even into a sync engine) gets the
    template's; the app's engines that connected meanwhile are disposed, so none
    stays connected to the template (PostgreSQL refuses to copy a database that
    has connections).
    """

    def __init__(self, source: SchemaSource, environment: Callable[[str], dict[str, str]]) -> None:
        self.source = source
        self.environment = environment
        self.description = source.description

    def key(self) -> str:
        return self.source.key()

    async def build(self, url: URL) -> None:
        active = wiring.active()
        assert url.database is not None
        with mock.patch.dict(os.environ, self.environment(url.database)):
            if active is None:
                await self.source.build(url)
                return
            with active.redirected(url):
                try:
                    await self.source.build(url)
                finally:
                    await dispose_app_engines()


async def dispose_app_engines() -> None:
    """Close the pooled connections of every app engine (public ``dispose()``)."""
    for engine in wiring.app_engines():
        await AsyncEngine(engine).dispose()


def _root_engine_like(primary: Engine | None, url: URL) -> AsyncEngine:
    """An engine on ``url`` with ``primary``'s driver, dialect options and execution options."""
    if primary is None:
        engine = create_async_engine(
            url, poolclass=pool.AsyncAdaptedQueuePool, pool_size=2, max_overflow=8
        )
    else:
        # Not the app's isolation level: an AUTOCOMMIT engine's would make the test's
        # own transaction commit each statement.
        dialect_options = {
            k: v
            for k, v in getattr(primary.dialect, "e2e_kwargs", {}).items()
            if k != "isolation_level"
        }
        execution_options = {
            k: v for k, v in primary.get_execution_options().items() if k != "isolation_level"
        }
        engine = create_async_engine(
            url.set(drivername=primary.url.drivername),
            poolclass=pool.AsyncAdaptedQueuePool,
            pool_size=2,
            max_overflow=8,
            execution_options=execution_options,
            **dialect_options,
        )
    dialect = engine.sync_engine.dialect
    dialect.e2e_role = "root"  # type: ignore[attr-defined]
    if primary is not None:
        dialect.e2e_primary = primary.dialect  # type: ignore[attr-defined]
    return engine


def start_cluster(settings: Settings, address: Address) -> EmbeddedCluster:
    """The embedded cluster the settings ask for, restored from the cache if any,
    listening on ``address``'s port with its password."""
    bindir = settings.pg_bindir
    binaries = find_binaries(bindir.value, source=f"PG_BINDIR/e2e_pg_bindir ({bindir.source})")
    cache_dir = settings.cache_dir.value
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return EmbeddedCluster(
        binaries,
        cache=SnapshotCache(root, binaries.postgres),
        port=address.port,
        password=address.password,
    )


class E2ETest:
    """One test's world: the shared transaction, the app wired to it, and a client.

    Inside a seed group (the innermost open one, or ``seeding``, the group whose
    rows are being written), its transaction is a savepoint on the group's connection.
    """

    __test__ = False

    def __init__(
        self, run: E2ERun, *, seeding: seeds.SeedGroup | None = None, commits: bool = False
    ) -> None:
        self.run = run
        self.seeding = seeding
        self.commits = commits
        """Commits mode: a database of its own, real commits (``e2e_commits`` marker)."""
        self.database_name: str | None = None
        """In commits mode, the test's own database."""
        self.keep_for: str | None = None
        """Set (to the test's node id) to keep its own database after it failed."""
        self._environment: Any = None
        """In commits mode, the env variables pointed at the test's own database."""

    async def __aenter__(self) -> E2ETest:
        run = self.run
        self.recording = record.Recording(run.recording_limits)
        self.tx: TestTransaction | OwnDatabase
        if self.commits:
            if run.seed_groups:
                raise E2EError(COMMITS_IN_SEED_GROUP)
            if run.app_role is not None:
                raise E2EError(COMMITS_WITH_APP_ROLE.format(role=run.app_role))
            pool = await run.commits_pool()
            self.database_name = await pool.acquire()
            try:
                self.tx = await OwnDatabase(
                    run.wiring,
                    run.url.set(database=self.database_name),
                    run.commits_engine(),
                    run.make_session,
                    pool.warm,
                ).__aenter__()
            except BaseException:
                pool.release(self.database_name)
                raise
            # A subprocess or worker the test starts reads its database from there.
            self._environment = mock.patch.dict(os.environ, run._environment(self.database_name))
            self._environment.start()
        else:
            group = self.seeding or (run.seed_groups[-1] if run.seed_groups else None)
            self.tx = await TestTransaction(
                run.wiring,
                group.engine if group is not None else run.root_engine(),
                run.make_session,
                recording=self.recording if run.recording_on else None,
                check_deferred=run.check_deferred,
                deferrable=run.deferrable,
                app_role=run.app_role,
                within=group,
                keep=self.seeding is not None,
            ).__aenter__()
        self.app = run.app_under_test.app
        self._fastapi = self.app if isinstance(self.app, FastAPI) else None
        self._saved_overrides: dict[Any, Any] = {}
        if self._fastapi is not None:
            self._saved_overrides = dict(self._fastapi.dependency_overrides)
        if run.recording_on:
            run.app_under_test.recording = self.recording
        run.app_under_test.gate = self.tx.gate
        run.app_under_test.owner = self.tx
        self._client: httpx.AsyncClient | None = None
        self._sync_client: httpx.Client | None = None
        self._shared_transport: StreamingASGITransport | None = None
        self._flush_lock = asyncio.Lock()
        return self

    def _transport(self) -> StreamingASGITransport:
        """One transport for the test's async and sync clients, closed with the async one
        (which ends any app task a response left running)."""
        if self._shared_transport is None:
            self._shared_transport = StreamingASGITransport(
                self.run.app_under_test.asgi,
                explain_timeout=self.tx.gate.describe_wait if self.tx.gate is not None else None,
            )
        return self._shared_transport

    @property
    def client(self) -> httpx.AsyncClient:
        """The test's HTTP client on the app, made on first use (most tests that do
        not ask for ``client`` should not pay for building one)."""
        if self._client is None:
            self._client = httpx.AsyncClient(
                transport=self._transport(),
                base_url=self.run.base_url,
                headers=self.run.config.headers,
                event_hooks={"request": [self._before_request]},
            )
        return self._client

    def sync_client(self, loop: asyncio.AbstractEventLoop) -> httpx.Client:
        """The client for a sync test: the same app, loop and transaction."""
        if self._sync_client is None:
            self._sync_client = httpx.Client(
                transport=LoopTransport(self._transport(), loop),
                base_url=self.run.base_url,
                headers=self.run.config.headers,
            )
        return self._sync_client

    async def _before_request(self, request: httpx.Request) -> None:
        await self.flush_pending()

    async def flush_pending(self) -> None:
        """Flush ``db_session``'s pending rows before a request: rows the test added
        but did not flush would be invisible to the app. Requests opened together
        (WebSockets, the live server's) take turns: a session flushes once at a time.

        Not in commits mode: there the app sees committed rows only, and flushed but
        uncommitted ones would hold locks the app's requests would wait for."""
        if self.commits:
            return
        async with self._flush_lock:
            await self.tx.session.flush()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.run.app_under_test.gate = None
        self.run.app_under_test.owner = None
        self.run.app_under_test.recording = None
        if self._environment is not None:
            self._environment.stop()
        try:
            if self._sync_client is not None:
                self._sync_client.close()
            if self._client is not None:
                await self._client.aclose()
            elif self._shared_transport is not None:
                await self._shared_transport.aclose()
        finally:
            if self._fastapi is not None:
                self._fastapi.dependency_overrides.clear()
                self._fastapi.dependency_overrides.update(self._saved_overrides)
            try:
                await self.tx.__aexit__(exc_type, exc, tb)
            finally:
                if self.database_name is not None:
                    await self._give_back(self.database_name)

    async def _give_back(self, name: str) -> None:
        """Hand the test's own database back to the pool: dropped, or kept if it failed."""
        pool = self.run.pool
        assert pool is not None
        if self.keep_for is not None:
            await pool.keep(name, self.run.database.run_id, self.keep_for)
        else:
            pool.release(name)
