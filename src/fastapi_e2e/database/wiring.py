"""Where the app's database connections go: the test database, and during a test, its transaction.

``with Wiring(url) as wiring:`` is entered once per run. While it is active, every
engine made with the registered dialects (``dialects.py``) connects to ``url``,
whatever URL the app computed, and hands its pool a ``PinnedConnection`` instead of
the driver's connection. A pinned connection works on its own server connection
outside tests; while a test runs (``wiring.test``), each transaction it begins is a
SAVEPOINT on the test's one server connection, its commit a RELEASE and its
rollback a ROLLBACK TO. The app's engines, sessionmakers, session classes and
dependency functions stay exactly the app's.

The run's three engine listeners (before/after a statement, on an error) are
installed here and removed at the end; each dispatches once, to the test the
connection belongs to, or to the escape check for an engine that is not wired.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, ExceptionContext
from sqlalchemy.engine.interfaces import DBAPIConnection

from fastapi_e2e import compat
from fastapi_e2e.database.callsite import call_site
from fastapi_e2e.database.gate import REQUEST_TOKEN
from fastapi_e2e.database.urls import mask
from fastapi_e2e.errors import (
    CONNECTION_ESCAPE,
    STALE_TASK_SESSION,
    ConnectionEscapeError,
    E2EError,
)

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from fastapi_e2e.database.transaction import TestTransaction
    from fastapi_e2e.database.warm import WarmConnections

# Connection parameters that say which server and who: replaced by the test database's.
_TARGET_KEYS = frozenset(
    {
        "host",
        "hostaddr",
        "port",
        "user",
        "password",
        "database",
        "dbname",
        "service",
        "passfile",
        "target_session_attrs",
        "dsn",
    }
)
# TLS settings are for the production server; the test server speaks none.
_TLS_KEYS = frozenset(
    {
        "ssl",
        "sslmode",
        "sslrootcert",
        "sslcert",
        "sslkey",
        "sslcrl",
        "sslpassword",
        "direct_tls",
        "sslnegotiation",
        "channel_binding",
        "gssencmode",
    }
)

_created: list[weakref.ref[Engine]] = []
"""Every wired engine made in this process, oldest first (engines outlive runs)."""
_active: list[Wiring] = []
"""The active wiring, innermost last: pytester runs pytest inside a test."""


def engine_created(engine: Engine) -> None:
    """Remember an engine the registered dialects made, and hear when its pool has set
    up a new connection (SQLAlchemy may announce an engine twice)."""
    if any(ref() is engine for ref in _created):
        return
    _created[:] = [ref for ref in _created if ref() is not None]
    _created.append(weakref.ref(engine))
    # Registered after SQLAlchemy's own set-up listeners, so it runs after them.
    event.listen(engine.pool, "connect", _set_up)
    wiring = active()
    if wiring is None:
        return
    if engine.url is wiring.test_code_url:
        # Made from the URL object e2e_database_url hands out: the test code's own
        # connections, on purpose outside the test's transaction.
        engine.dialect.e2e_role = "harness"  # type: ignore[attr-defined]
    else:
        wiring.lift_pool_limit(engine)


def _set_up(dbapi_connection: Any, connection_record: Any) -> None:
    if type(dbapi_connection) is PinnedConnection:
        dbapi_connection.ready = True


def _live_app_engines() -> Iterator[Engine]:
    for ref in _created:
        engine = ref()
        if engine is not None and getattr(engine.dialect, "e2e_role", "") == "app":
            yield engine


def engines_to_retarget() -> list[Engine]:
    """The live wired engines whose connections must follow the target database when it
    changes (commits mode): the app's and the test code's, not the harness's root."""
    return [
        engine
        for ref in _created
        if (engine := ref()) is not None
        and getattr(engine.dialect, "e2e_role", "") in ("app", "harness")
    ]


def primary_engine() -> Engine | None:
    """The app's oldest live engine, whose driver and options the tests' connections
    copy (this runs for every test: no list is built)."""
    return next(_live_app_engines(), None)


def app_engines() -> list[Engine]:
    """The live wired engines of the app (not the harness's own), oldest first."""
    return list(_live_app_engines())


def active() -> Wiring | None:
    return _active[-1] if _active else None


class PinnedConnection:
    """The DBAPI connection an app engine's pool holds while the run is live.

    Outside tests it is its own server connection, opened when first needed (a
    connection only ever used in tests never opens one). While a test runs, a
    transaction it begins runs on the test's connection inside a savepoint
    (``TestTransaction`` decides turns and names). Everything that is not about
    transactions (isolation settings, the driver's connection) goes to its own.
    """

    def __init__(
        self, open_own: Callable[[], DBAPIConnection], wiring: Wiring, *, root: bool, driver: str
    ) -> None:
        self.driver = driver
        """The driver's name (asyncpg, psycopg): one test's connections must share it."""
        self._open_own = open_own
        self._own: DBAPIConnection | None = None
        self._set_up_own: list[Callable[[Any], None]] = []
        self.wiring = wiring
        self.root = root
        """The harness's own connection for tests: its transaction is the test's."""
        self.test: TestTransaction | None = None
        """The test whose transaction this connection's current work is part of."""
        self.savepoint: str | None = None
        self.on_own = False
        """Its current transaction began on its own connection (outside a test)."""
        self.wrote = False
        self.nested = False
        self.failed = False
        """A statement of its current savepoint failed: it can only roll back."""
        self.saved_settings: dict[str, str | None] = {}
        """Settings its savepoint set (SET LOCAL, set_config) and their values before:
        put back after a RELEASE, as production's COMMIT would."""
        self.ready = False
        """False while the pool sets the connection up (dialect initialisation): that
        work stays on its own connection."""

    @property
    def own(self) -> DBAPIConnection:
        """Its own server connection, opened (and set up by the dialect) on first use."""
        if self._own is None:
            self._own = self._open_own()
            set_up, self._set_up_own = self._set_up_own, []
            for step in set_up:
                step(self)
        return self._own

    @property
    def opened(self) -> bool:
        return self._own is not None

    def on_own_connection(self, step: Callable[[Any], None]) -> None:
        """Run the dialect's per-connection set-up once its own connection exists."""
        if self._own is None:
            self._set_up_own.append(step)
        else:
            step(self)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.own, name)

    def cursor(self, *args: Any, **kwargs: Any) -> Any:
        if self.root or not self.ready or self.on_own:
            return self.own.cursor(*args, **kwargs)
        test = self.test
        if test is None:
            test = self.wiring.test
            if test is None:
                _refuse_request_task_between_tests(self.wiring)
                self.on_own = True
                return self.own.cursor(*args, **kwargs)
            test.begin(self)
        elif test is not self.wiring.test:
            raise E2EError(STALE_TASK_SESSION.format(site=call_site()))
        return test.physical.cursor(*args, **kwargs)

    def commit(self) -> None:
        if self.test is not None:
            self.test.commit(self)
        elif self.root and self.wiring.test is not None and self.wiring.test.root is self:
            self.wiring.test.refuse_outer_end()
        elif self._own is not None:
            self.on_own = False
            self._own.commit()

    def rollback(self) -> None:
        if self.test is not None:
            self.test.rollback(self)
        elif self.root and self.wiring.test is not None and self.wiring.test.root is self:
            self.wiring.test.refuse_outer_end()
        elif self._own is not None:
            self.on_own = False
            self._own.rollback()

    def close(self) -> None:
        try:
            if self.test is not None and self.test is self.wiring.test:
                self.test.rollback(self)
        except Exception:  # e.g. closed by the pool outside SQLAlchemy's greenlet
            if self.test is not None:
                self.test.abandon(self)
        finally:
            if self._own is not None:
                self._own.close()

    def terminate(self) -> None:
        """SQLAlchemy gave up on the connection (a cancelled query): no statement can run
        now, so its savepoint is undone before the test's next statement."""
        if self.test is not None:
            self.test.abandon(self)
        if self._own is not None:
            self._own.terminate()

    def in_test(self) -> DBAPIConnection | None:
        """The test's connection, if this connection's work goes there now."""
        if self.test is not None:
            return self.test.physical
        test = self.wiring.test
        if test is not None and not self.on_own and (self.ready or self.root):
            return test.physical
        return None

    def forget_test(self) -> None:
        """The test ended with this connection's savepoint open: the rollback took it."""
        self.test = None
        self.savepoint = None
        self.wrote = self.nested = self.failed = False
        if self.saved_settings:
            self.saved_settings = {}


def _refuse_request_task_between_tests(wiring: Wiring) -> None:
    """Work a request's left-over task starts between tests would persist for the run;
    refused, and remembered so the next test fails even if the task swallows it."""
    request = REQUEST_TOKEN.get()
    if request is not None and request.owner is not None and request.owner is not wiring.owner:
        error = E2EError(STALE_TASK_SESSION.format(site=call_site()))
        wiring.escapes.append(error)
        raise error


def _pinned(conn: Connection) -> PinnedConnection | None:
    dbapi = conn.connection.dbapi_connection
    return dbapi if type(dbapi) is PinnedConnection else None


def _test_of(pinned: PinnedConnection) -> TestTransaction | None:
    """The test whose transaction a statement on ``pinned`` is part of, if any."""
    if pinned.test is not None:
        return pinned.test
    test = pinned.wiring.test
    return test if test is not None and test.root is pinned else None


class Wiring:
    """The run's redirection of every wired engine to ``url``, and its listeners."""

    def __init__(self, url: URL, test_code_url: URL | None = None) -> None:
        self.url = url
        self.test_code_url = test_code_url or url
        """The URL object ``e2e_database_url`` hands out: engines made from it are the
        test code's own (not wired)."""
        self.test: TestTransaction | None = None
        """The running test (None between tests)."""
        self.escapes: list[E2EError] = []
        """Work refused outside the test's transaction, to fail the test it happened in."""
        self.commits = False
        """A commits-mode test runs: ``url`` is its own database, ``test`` is None, and the
        app's connections (raw asyncpg ones too) commit there for real."""
        self.owner: object = None
        """A commits-mode test's own database object while it runs: its requests'
        connections are its own; those of other tests' left-over tasks are refused."""
        self.commits_session: AsyncSession | None = None
        """A commits-mode test's ``db_session`` (``current_session()`` hands it out)."""
        self.warm: WarmConnections | None = None
        """A commits-mode test's connect for the wired async engines (``warm.py``)."""
        self._pool_limits: dict[int, tuple[weakref.ref[Engine], Any, Any]] = {}
        """Per engine (by id, while it lives): its pool and the limit to restore."""

    def lift_pool_limit(self, engine: Engine) -> None:
        """For the run, let the engine's pool grow as its requests ask (restored after).
        Lifting it again (a new pool after ``dispose()``) replaces the engine's entry."""
        known = self._pool_limits.get(id(engine))
        if known is not None and known[0]() is engine and known[1] is engine.pool:
            return  # lifted already: lifting again would save "no limit" as its limit
        limit = compat.lift_overflow_limit(engine.pool)
        self._pool_limits[id(engine)] = (weakref.ref(engine), engine.pool, limit)

    def __enter__(self) -> Wiring:
        _active.append(self)
        for engine in app_engines():
            self.lift_pool_limit(engine)
        event.listen(Engine, "before_cursor_execute", self._before_statement)
        event.listen(Engine, "after_cursor_execute", self._after_statement)
        event.listen(Engine, "handle_error", self._statement_failed)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for alive, engine_pool, limit in reversed(self._pool_limits.values()):
            if alive() is not None:
                compat.restore_overflow_limit(engine_pool, limit)
        self._pool_limits.clear()
        event.remove(Engine, "handle_error", self._statement_failed)
        event.remove(Engine, "after_cursor_execute", self._after_statement)
        event.remove(Engine, "before_cursor_execute", self._before_statement)
        _active.remove(self)

    @contextmanager
    def redirected(self, url: URL) -> Iterator[None]:
        """Send new connections to ``url`` inside the block (the schema template's build)."""
        saved, self.url = self.url, url
        try:
            yield
        finally:
            self.url = saved

    def connect(
        self,
        dialect: Any,
        connect: Callable[..., DBAPIConnection],
        cargs: tuple[Any, ...],
        cparams: dict[str, Any],
    ) -> DBAPIConnection:
        """A connection for a wired engine: to the test database, pinned during tests."""
        _, target = dialect.create_connect_args(self.url)
        kept = {k: v for k, v in cparams.items() if k not in _TARGET_KEYS and k not in _TLS_KEYS}
        role = dialect.e2e_role
        if role == "app" and kept != dialect.e2e_connect_args:
            dialect.e2e_connect_args = kept  # the root engine copies them
            dialect.e2e_connect_args_version += 1
        elif role in ("root", "harness") and dialect.e2e_primary is not None:
            # The harness's engines (the tests' and commits mode's): the app's
            # server_settings, statement cache size... as the app's engine passes them.
            kept = {**dialect.e2e_primary.e2e_connect_args, **kept}
        params = {**kept, **target}
        warm = self.warm.connect_for(dialect.driver, dialect.is_async) if self.warm else None
        if self.commits and warm is not None:
            # A commits-mode database's: opened ahead, closed by its pool.
            if compat.open_with(params, warm):
                dialect.e2e_warm = True
        elif dialect.driver == "asyncpg":
            # Past the raw-connection guard: these connections are the wired ones.
            compat.open_with(params, compat.original_asyncpg_connect())
        if role == "harness":
            return connect(**params)
        root = role == "root"
        pinned = PinnedConnection(lambda: connect(**params), self, root=root, driver=dialect.driver)
        if root:
            pinned.own  # noqa: B018 - opened now, inside SQLAlchemy's greenlet: tests use it
        return pinned

    # --- the three listeners: one dispatch each -----------------------------------

    def _before_statement(
        self, conn: Connection, cursor: Any, sql: str, params: Any, context: Any, many: bool
    ) -> None:
        pinned = _pinned(conn)
        if pinned is None:
            self._check_escape(conn)
            return
        test = _test_of(pinned)
        if test is not None:
            test.before_statement(pinned, sql, params, context, many)

    def _after_statement(
        self, conn: Connection, cursor: Any, sql: str, params: Any, context: Any, many: bool
    ) -> None:
        pinned = _pinned(conn)
        test = _test_of(pinned) if pinned is not None else None
        if test is not None:
            test.after_statement(cursor)

    def _statement_failed(self, context: ExceptionContext) -> None:
        conn = context.connection
        if conn is None or conn.invalidated:
            return
        pinned = _pinned(conn)
        test = _test_of(pinned) if pinned is not None else None
        if test is not None and pinned is not None:
            test.statement_failed(pinned, context.original_exception)

    def _check_escape(self, conn: Connection) -> None:
        if getattr(conn.engine.dialect, "e2e_role", None) == "harness":
            return  # the harness's own, or the test code's on e2e_database_url
        # Between tests only work started by a request (a task it left running) is the
        # app's; a fixture of the user's may use its own engine then.
        if self.test is None and REQUEST_TOKEN.get() is None:
            return
        error = ConnectionEscapeError(
            CONNECTION_ESCAPE.format(pool=f"engine {mask(conn.engine.url)}", site=call_site())
        )
        self.escapes.append(error)
        raise error

    def take_escapes(self) -> list[E2EError]:
        escapes, self.escapes = self.escapes, []
        return escapes
