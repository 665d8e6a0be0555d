"""The fixtures a test uses: client, db_session, db_connection, app, e2e_database_url.

Every fixture here is a plain (sync) pytest fixture that drives pytest-asyncio's
session-scoped runner itself. That pins the harness to one loop whatever the user's
pytest-asyncio settings, keeps anyio's fixture wrapper away from it, and costs one
fixture hop per test instead of a chain of async fixtures.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import gc
import inspect
import signal
import sysconfig
import threading
import traceback
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, Protocol, TypeVar

import pytest

from fastapi_e2e import compat, errors
from fastapi_e2e.config import E2EConfig, Settings, with_ini
from fastapi_e2e.database.address import Address
from fastapi_e2e.server import loop_thread
from fastapi_e2e.xdist import WorkerInfo

if TYPE_CHECKING:
    # The harness (FastAPI, httpx, SQLAlchemy, asyncpg) is imported by the first test
    # that uses it: a run that never does pays nothing for it.
    import httpx
    from fastapi import FastAPI
    from sqlalchemy.engine import URL
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

    from fastapi_e2e.diagnosis.queries import QueryCounter
    from fastapi_e2e.harness import E2ERun, E2ETest
    from fastapi_e2e.server.live import LiveServer

SETTINGS_KEY = pytest.StashKey[Settings]()
TEST_KEY = pytest.StashKey["E2ETest"]()
RUN_KEY = pytest.StashKey["E2ERun"]()
SUMMARY_KEY = pytest.StashKey[str]()
LOOP_KEY = pytest.StashKey[asyncio.AbstractEventLoop]()
WORKER_KEY = pytest.StashKey[WorkerInfo]()
ADDRESS_KEY = pytest.StashKey[Address]()
INI_CONFIG_KEY = pytest.StashKey[dict[str, Any]]()
"""The E2EConfig fields the ini keys set (``e2e_app``...)."""
_RUN_FAILURE_SHOWN_KEY = pytest.StashKey[bool]()
SYNC_TEST_KEY = pytest.StashKey[bool]()
"""Item stash: a sync test function (set at collection); it gets a sync client."""
USES_HARNESS_KEY = pytest.StashKey[bool]()
"""Item stash: the test asks for a per-test harness fixture (set at collection)."""
COMMITS_KEY = pytest.StashKey[bool]()
"""Item stash: the test is marked ``e2e_commits`` (set at collection)."""
COMMITS_MARKER = "e2e_commits"

FULL_BODY_BYTES = 1024 * 1024


T = TypeVar("T")


class _Runner(Protocol):
    """What we use of asyncio.Runner (or its backport, which pytest-asyncio uses on 3.10)."""

    def run(self, coro: Coroutine[Any, Any, T]) -> T: ...

    def get_loop(self) -> asyncio.AbstractEventLoop: ...


def _describe(exc: errors.E2EError) -> str:
    """The error's message, followed by the traceback of the app or library error behind it.

    The message alone says what to fix; the traceback says where (a line in the
    lifespan, a migration, the module that failed to import).
    """
    cause = exc.__cause__
    if cause is None or isinstance(cause, errors.E2EError):
        return str(exc)
    trace = "".join(_without_import_machinery(traceback.TracebackException.from_exception(cause)))
    return f"{exc}\n\nCaused by:\n{trace.rstrip()}"


def _without_import_machinery(error: traceback.TracebackException) -> Iterator[str]:
    """The traceback with only the frames of the project's own code (its app, env.py,
    migrations), which say where; the harness's, libraries' and importlib's frames
    only say how that code was reached (pytest's --full-trace does not change this:
    run the failing step by hand for those)."""
    seen: set[int] = set()
    pending: list[traceback.TracebackException | None] = [error]
    while pending:
        part = pending.pop()
        if part is None or id(part) in seen:
            continue
        seen.add(id(part))
        frames = [frame for frame in part.stack if _is_project_frame(frame.filename)]
        part.stack = traceback.StackSummary.from_list(frames)
        pending.extend((part.__cause__, part.__context__))
    return error.format()


_LIBRARY_ROOTS = tuple(
    {
        sysconfig.get_paths()["stdlib"],
        sysconfig.get_paths()["purelib"],
        sysconfig.get_paths()["platlib"],
    }
)


def _is_project_frame(filename: str) -> bool:
    return not (
        filename.startswith("<")
        or "/fastapi_e2e/" in filename
        or "/site-packages/" in filename
        or filename.startswith(_LIBRARY_ROOTS)
    )


def _run_or_fail(on: _Runner | asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the session loop; an E2EError fails the test with its message."""
    __tracebackhide__ = True
    failure = None
    try:
        if isinstance(on, asyncio.AbstractEventLoop):
            # On the loop's helper thread while a sync test uses live_server.
            return loop_thread.run_until_complete(on, coro)
        return on.run(coro)
    except errors.E2EError as exc:
        failure = exc  # failed outside the except block, so no "during handling" chain
    _fail(failure)


def _fail(exc: errors.E2EError) -> NoReturn:
    """Fail the current test with ``exc``'s message only, not the plugin's frames."""
    __tracebackhide__ = True
    pytest.fail(_describe(exc), pytrace=False)


class _MissingConfig(errors.ConfigError):
    """Raised by the placeholder ``e2e_config``; turned into a message naming the test."""


@pytest.fixture(scope="session")
def e2e_config(request: pytest.FixtureRequest) -> E2EConfig:
    """The E2EConfig of the ini keys (``e2e_app = "myapp.main:app"``...), session-scoped.

    Define your own session-scoped ``e2e_config`` in conftest.py for what ini keys
    cannot say (an app object, session_options); the fields it leaves unset are still
    taken from the ini keys.
    """
    ini = request.config.stash[INI_CONFIG_KEY]
    if "app" not in ini:
        raise _MissingConfig("no e2e_config fixture is defined")
    try:
        return E2EConfig(**ini)
    except errors.ConfigError as exc:
        _fail(exc)


def _get_run(request: pytest.FixtureRequest) -> E2ERun:
    """The run, or a failure naming the test and the fixtures that needed it."""
    __tracebackhide__ = True
    failure_to_show: errors.E2EError
    try:
        run: E2ERun = request.getfixturevalue("_e2e_run")
        return run
    except pytest.fail.Exception as failure:
        # pytest re-raises the run's failure in every test: show the app's traceback
        # once, and its first paragraph after that.
        if not request.config.stash.get(_RUN_FAILURE_SHOWN_KEY, False):
            request.config.stash[_RUN_FAILURE_SHOWN_KEY] = True
            raise
        headline = str(failure.msg).split("\n", 1)[0]
        failure_to_show = errors.E2EError(errors.SEEN_IN_AN_EARLIER_TEST.format(headline=headline))
    except _MissingConfig:
        node = request.node
        if isinstance(node, pytest.Function):
            who = node.nodeid
            used = ", ".join(sorted(set(node.fixturenames) & PUBLIC_FIXTURES))
        else:  # a session-scoped fixture of the user's asked for e2e_database_url
            who, used = f"A {request.scope}-scoped fixture", request.fixturename or "?"
        failure_to_show = errors.ConfigError(
            errors.NO_CONFIG_FIXTURE.format(nodeid=who, fixture=used)
        )
    _fail(failure_to_show)  # outside the except blocks: no "during handling" chain


@pytest.fixture(scope="session")
def _e2e_run(request: pytest.FixtureRequest, e2e_config: Any) -> Iterator[E2ERun]:
    """The run's database, engine and app with lifespan: built once, on the session loop."""
    __tracebackhide__ = True
    if not isinstance(e2e_config, E2EConfig):
        _fail(errors.ConfigError(errors.BAD_CONFIG_FIXTURE.format(value=e2e_config)))
    from fastapi_e2e.diagnosis.record import Limits
    from fastapi_e2e.harness import E2ERun

    runner: _Runner = request.getfixturevalue(compat.SESSION_RUNNER_FIXTURE)
    settings = request.config.stash[SETTINGS_KEY]
    try:
        ini: dict[str, Any] = request.config.stash[INI_CONFIG_KEY]
        config = with_ini(e2e_config, ini)
    except errors.ConfigError as exc:
        _fail(exc)
    run = E2ERun(
        config,
        settings,
        request.config.stash.get(WORKER_KEY, None),
        request.config.stash[ADDRESS_KEY],
    )
    if request.config.get_verbosity() >= 2:  # -vv shows whole bodies: keep more of them
        run.recording_limits = Limits(body_bytes=FULL_BODY_BYTES)
    _run_or_fail(runner, run.__aenter__())
    # What exists now (the app, SQLAlchemy, pydantic: hundreds of thousands of
    # objects) lives for the run; without this each full collection re-scans it all
    # (~70 ms each, one every few hundred tests: ~0.15 ms per test).
    gc.freeze()
    freeze_heap_at_exit()
    request.config.stash[RUN_KEY] = run
    # Per test, the loop runs the short setup and teardown itself: the runner's
    # run() re-installs a SIGINT handler each time, which costs more than the work.
    request.config.stash[LOOP_KEY] = runner.get_loop()
    request.config.stash[SUMMARY_KEY] = run.summary()
    with _sigterm_as_interrupt():
        yield run
    gc.unfreeze()
    del request.config.stash[RUN_KEY]
    del request.config.stash[LOOP_KEY]
    _run_or_fail(runner, run.__aexit__(None, None, None))  # e.g. lifespan shutdown failed
    request.config.stash[SUMMARY_KEY] = run.summary()  # now with what became of the cache
    # Escapes after the last test (a task it left running) have no test to fail.
    escapes = run.wiring.take_escapes()
    if escapes:
        _fail(escapes[0])


@functools.cache  # once per process
def freeze_heap_at_exit() -> None:
    """At interpreter exit, put every live object out of the garbage collector's reach.

    The run unfreezes the heap when it ends (a pytester run in-process must not leave
    the outer process's objects immortal), and Python's shutdown then runs full
    collections over all of it: ~0.3 s per process with FastAPI and SQLAlchemy
    loaded, paid by every worker. The process is ending, so nothing is lost but the
    collection of cycles Python would not promise to finalize at exit anyway.
    """
    atexit.register(gc.freeze)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM (a CI timeout, ``kill``) like Ctrl-C while the run is live.

    pytest handles KeyboardInterrupt by tearing fixtures down, which drops the test
    databases and stops the cluster; the default SIGTERM action would skip that.
    """
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    ):
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        # Whatever handles Ctrl-C now (asyncio's runner cancels its task cleanly).
        handler = signal.getsignal(signal.SIGINT)
        if callable(handler):
            handler(signum, frame)
        else:
            raise KeyboardInterrupt(f"received signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


# The test being run, innermost last: pytester runs pytest inside a test.
_items: list[pytest.Item] = []


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    """Remember the test being run, for the per-test fixtures below.

    Those fixtures take no arguments on purpose: asking for ``request`` makes pytest
    (9.x) build a FixtureDef and inspect a signature for it on every use, about
    0.1 ms per fixture per test, which the per-test budget cannot afford twice.
    """
    _items.append(item)
    try:
        return (yield)
    finally:
        _items.pop()


def _current_item() -> pytest.Item:
    if not _items:  # a fixture resolved outside pytest's run protocol
        raise RuntimeError("fastapi-e2e: no test is running; harness fixtures are per test")
    return _items[-1]


def _request_of(item: pytest.Item) -> pytest.FixtureRequest:
    """The item's own fixture request, for the rare lookups a fixture still needs
    (the run on the first test, the anyio backend)."""
    request: pytest.FixtureRequest = compat.item_request(item)
    return request


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _check_loop(item: pytest.Item) -> None:
    """Fail at setup when the test would run outside the harness's session loop."""
    __tracebackhide__ = True
    marker = item.get_closest_marker("asyncio")
    scope = marker and (marker.kwargs.get("loop_scope") or marker.kwargs.get("scope"))
    fixturenames: list[str] = getattr(item, "fixturenames", [])
    if scope and scope != "session":
        harness = sorted(set(fixturenames) & PUBLIC_FIXTURES)
        _fail(
            errors.LoopScopeError(
                errors.LOOP_SCOPE_MISMATCH.format(
                    nodeid=item.nodeid, fixtures=", ".join(harness), scope=scope
                )
            )
        )
    if "anyio_backend" in fixturenames:
        backend = _request_of(item).getfixturevalue("anyio_backend")
        name = backend if isinstance(backend, str) else backend[0]
        options = {} if isinstance(backend, str) or len(backend) < 2 else dict(backend[1])
        if name != "asyncio":
            _fail(
                errors.LoopScopeError(
                    errors.ANYIO_BACKEND_UNSUPPORTED.format(nodeid=item.nodeid, backend=name)
                )
            )
        if options:
            _fail(
                errors.LoopScopeError(
                    errors.ANYIO_OPTIONS_UNSUPPORTED.format(nodeid=item.nodeid, options=options)
                )
            )


def _this_test() -> E2ETest:
    """The running test's E2ETest, started on first use: by the first harness fixture
    the test asks for, or earlier, before its first function-scoped fixture of the
    user's (``start_before_fixture``), so that fixture's database work is inside the
    test's transaction. It ends when the test's fixtures are torn down, after the
    fixtures set up after it.

    Each public fixture starts the test itself instead of depending on a shared
    fixture: every fixture hop costs pytest's machinery per test, which the budget
    for the whole per-test path (0.5 ms) cannot afford twice.
    """
    __tracebackhide__ = True
    item = _current_item()
    test = item.stash.get(TEST_KEY, None)
    if test is not None:
        return test
    if _loop_running():  # getfixturevalue() from inside an async test or fixture
        _fail(errors.ConfigError(errors.FIXTURE_INSIDE_LOOP.format(nodeid=item.nodeid)))
    _check_loop(item)
    # Once the run exists, take it and the loop from the stash: getfixturevalue()
    # per test costs more than the test's own database work.
    run = item.config.stash.get(RUN_KEY, None) or _get_run(_request_of(item))
    loop = item.config.stash[LOOP_KEY]
    from fastapi_e2e.harness import E2ETest

    test = _run_or_fail(loop, E2ETest(run, commits=item.stash.get(COMMITS_KEY, False)).__aenter__())
    item.stash[TEST_KEY] = test
    item.addfinalizer(functools.partial(_end_test, test, loop))
    return test


def _end_test(test: E2ETest, loop: asyncio.AbstractEventLoop) -> None:
    __tracebackhide__ = True
    _run_or_fail(loop, test.__aexit__(None, None, None))
    escapes = test.run.wiring.take_escapes() + test.tx.stale
    if escapes:
        _fail(escapes[0])


def _refuse_in_sync_test(fixture: str) -> None:
    __tracebackhide__ = True
    item = _current_item()
    if item.stash.get(SYNC_TEST_KEY, False):
        _fail(
            errors.ConfigError(
                errors.ASYNC_FIXTURE_IN_SYNC_TEST.format(nodeid=item.nodeid, fixture=fixture)
            )
        )


def start_before_fixture(fixturedef: pytest.FixtureDef[Any], item: pytest.Item) -> None:
    """Start the harness test before a function-scoped fixture of the user's, in a test
    that uses the harness: the fixture's work then runs inside the test's transaction,
    whatever order the fixtures are listed in."""
    __tracebackhide__ = True
    if (
        fixturedef.scope == "function"
        and fixturedef.argname not in PUBLIC_FIXTURES
        and fixturedef.argname != "anyio_backend"  # the start reads it
        and TEST_KEY not in item.stash
        and item.stash.get(USES_HARNESS_KEY, False)
        and not item.stash.get(_STARTING_KEY, False)  # fixtures the start itself asks for
        and not _loop_running()
    ):
        item.stash[_STARTING_KEY] = True
        try:
            _this_test()
        finally:
            item.stash[_STARTING_KEY] = False


_STARTING_KEY = pytest.StashKey[bool]()


@pytest.fixture
def client() -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` on the app (base_url ``http://testserver``), function scope.

    Requests run in-process against the app built once per run with its lifespan
    running; the app's session dependency yields sessions inside this test's
    transaction. Unhandled app exceptions come back as 500 responses and their
    tracebacks are shown in the report of a failing test.
    """
    __tracebackhide__ = True
    test = _this_test()
    item = _current_item()
    if item.stash.get(SYNC_TEST_KEY, False):
        return test.sync_client(item.config.stash[LOOP_KEY])  # type: ignore[return-value]
    return test.client


@pytest.fixture
def db_session() -> AsyncSession:
    """An ``AsyncSession`` inside this test's transaction, function scope.

    Shares the connection with the app: rows it flushes are visible to requests
    (pending rows are flushed before each request) and rows the app writes are
    visible to it. ``commit()`` releases a savepoint and ``rollback()`` returns to
    one; the outer transaction is rolled back after the test. SELECTs refresh
    objects already loaded, so the test sees what the app changed.

    In a test marked ``e2e_commits``: a session on the test's own database with
    connections of its own; ``commit()`` commits for real (the app sees committed
    rows only), and the database is dropped after the test.
    """
    __tracebackhide__ = True
    _refuse_in_sync_test("db_session")
    return _this_test().tx.session


@pytest.fixture
def db_connection() -> AsyncConnection:
    """The ``AsyncConnection`` this test, ``db_session`` and the app share, function scope.

    Use it for Core statements. Do not commit or roll back its transaction: that is
    the harness's, ended after the test.

    In a test marked ``e2e_commits``: a connection of its own to the test's own
    database (not the app's); ``commit()`` commits for real.
    """
    __tracebackhide__ = True
    _refuse_in_sync_test("db_connection")
    test = _this_test()
    if test.commits:
        from fastapi_e2e.database.commits import OwnDatabase

        assert isinstance(test.tx, OwnDatabase)
        return _run_or_fail(_current_item().config.stash[LOOP_KEY], test.tx.open_connection())
    return test.tx.connection


@pytest.fixture
def app() -> FastAPI:
    """The app under test (built once per run, lifespan running), function scope.

    Changes to ``app.dependency_overrides`` made by the test are undone after it.
    """
    __tracebackhide__ = True
    return _this_test().app  # type: ignore[return-value]


@pytest.fixture(scope="session")
def e2e_database_url(request: pytest.FixtureRequest) -> URL:
    """SQLAlchemy ``URL`` of the run's test database, session scope.

    On the embedded cluster, its TCP address (``127.0.0.1``, the run's port and
    password); on a given server, that server. Its ``repr``/``str`` mask the password;
    ``url.render_as_string(hide_password=False)`` gives the full URL. Connections made
    with it are outside the test's transaction.
    """
    return _get_run(request).test_code_url


@pytest.fixture(scope="session")
def e2e_app_role(request: pytest.FixtureRequest) -> str | None:
    """The name of the role the app's work runs as in tests (``--e2e-app-role``), or
    None when it runs as the harness's own role; session scope.

    ``db_session`` and ``db_connection`` run as the harness's role (a superuser on
    the embedded cluster: they see and write every row, whatever the row-level
    security policies say). ``await db_session.execute(text(f"SET ROLE {name}"))``
    makes the test's own statements run as the app's role too, until ``RESET ROLE``.
    """
    return _get_run(request).app_role


@pytest.fixture
def e2e_test_database_url() -> URL:
    """SQLAlchemy ``URL`` of the database this test's app works in, function scope.

    In a test marked ``e2e_commits``, the test's own database, where the app commits
    for real: give it to a subprocess, a raw asyncpg/psycopg connection, a LISTEN
    connection or ``psql``; it stops existing when the test ends. In other tests it is
    ``e2e_database_url`` (the run's test database, where the test's rows are never
    committed). Address and masking as ``e2e_database_url``'s. Asking for it starts
    the test like ``client`` does.
    """
    __tracebackhide__ = True
    test = _this_test()
    if test.database_name is not None:
        return test.run.own_database_url(test.database_name)
    return test.run.test_code_url


@pytest.fixture
def e2e_queries() -> QueryCounter:
    """Assert how many SQL statements a block runs, function scope.

    ``with e2e_queries.exactly(3):`` or ``with e2e_queries.at_most(5):`` around
    ``await client.get(...)`` calls (a plain ``with``, also in async tests) counts the
    statements run on the test's connection inside the block, by the test and by the
    app, leaving out SAVEPOINT/RELEASE/ROLLBACK TO bookkeeping. A failure lists them
    and flags a statement repeated within one request (an N+1 pattern).
    ``with e2e_queries.capture() as queries:`` only collects them (``queries.sql``).
    Refused in a test marked ``e2e_commits``, which has no shared connection to count on.
    """
    __tracebackhide__ = True
    from fastapi_e2e.diagnosis.queries import QueryCounter

    test = _this_test()
    if test.commits:
        _fail(errors.E2EError(errors.QUERIES_IN_COMMITS_MODE))
    return QueryCounter(test.recording)


@pytest.fixture(scope="session")
def _e2e_live_server(request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    """The run's live server: started on the session loop by the first test that asks
    for ``live_server``, stopped at the end of the run (before the app's lifespan ends)."""
    __tracebackhide__ = True
    run = request.config.stash.get(RUN_KEY, None) or _get_run(request)
    loop = request.config.stash[LOOP_KEY]
    from fastapi_e2e.server.live import LiveServer

    server = _run_or_fail(loop, LiveServer(run.app_under_test).__aenter__())
    run.timings["live server"] = server.startup_seconds
    try:
        yield server
    finally:
        _run_or_fail(loop, server.__aexit__(None, None, None))


@pytest.fixture
def live_server(_e2e_live_server: LiveServer) -> Iterator[LiveServer]:
    """The app served over TCP on ``127.0.0.1``, for a browser or another process;
    function scope (the server itself starts once per run).

    Yields the server: ``live_server.url`` (``http://127.0.0.1:<port>``, no trailing
    slash), ``.host`` and ``.port``. It serves the same app as ``client``, lifespan
    already running, on the session loop. During the test each request's database
    work runs in this test's transaction, like ``client``'s: rows the test seeded
    (flushed ones, and pending ones, flushed first) are visible to the browser, its
    writes to ``db_session``, and all is rolled back after the test (in a test marked
    ``e2e_commits``: committed rows only, in the test's own database); requests are
    recorded in the failure report. Outside a test that asks for it, requests are
    answered 503 with the reason. Combined with ``client``, both reach the same app
    and transaction. In a sync test the session loop runs in a helper thread from
    this fixture's setup to its teardown, so the server answers while the test blocks
    (sync Playwright, ``httpx.get``); the sync ``client`` works meanwhile, and async
    fixtures set up after this one get the loop back on the main thread for their
    setup and teardown.
    """
    __tracebackhide__ = True
    test = _this_test()
    item = _current_item()
    loop = item.config.stash[LOOP_KEY]
    thread = loop_thread.LoopThread(loop) if item.stash.get(SYNC_TEST_KEY, False) else None
    _e2e_live_server.serve(test)
    try:
        if thread is not None:
            thread.start()
        yield _e2e_live_server
    finally:
        try:
            _run_or_fail(loop, _e2e_live_server.finish())
        finally:
            if thread is not None:
                thread.stop()


SEED_SCOPES = ("session", "package", "module", "class")
_HARNESS_ARGUMENTS = ("db_session", "db_connection", "client", "app")
_REQUEST = "request"
_Seed = TypeVar("_Seed", bound=Callable[..., Awaitable[Any]])


def seed(
    scope: str = "module",
    *,
    files: Sequence[str | Path] = (),
    autouse: bool = False,
    name: str | None = None,
) -> Callable[[_Seed], Any]:
    """Make an async function a fixture of ``scope`` whose rows every test of the group sees.

    ``@seed(scope="module")`` (or ``"class"``, ``"package"``, ``"session"``) above
    ``async def catalogue(db_session): ...`` runs the function once per group, when
    the group's first test that asks for ``catalogue`` is set up; the fixture's value
    is what the function returns. ``files`` (JSON, YAML, CSV, relative to the module
    that calls ``seed``) are loaded first. The function may ask for ``db_session``,
    ``db_connection``, ``client`` and ``app`` (the seed's own, in the group's
    transaction) and for other fixtures of the same or a wider scope.

    The group's rows stay in a transaction held open on one connection until the
    group ends, then are rolled back; each test of the group runs in a savepoint on
    that connection, so it (and the app) sees the rows, may change them, and its
    changes are rolled back after it. Tests set up while a group is open run in it.
    Groups nest (a module's seed inside the run's): a wider one must be set up first,
    which pytest does for the fixtures of one test (make a session seed autouse).
    """
    if scope not in SEED_SCOPES:
        raise errors.ConfigError(
            f"seed(scope={scope!r}): the scope must be one of {', '.join(SEED_SCOPES)} "
            "(a function-scoped seed is an ordinary fixture using db_session)."
        )
    base = _caller_dir()

    def decorate(function: _Seed) -> Any:
        if not inspect.iscoroutinefunction(function):
            name_of = getattr(function, "__name__", repr(function))
            raise errors.ConfigError(errors.SEED_NOT_ASYNC.format(name=name_of))
        return _seed_fixture(function, scope, files, base, autouse, name)

    return decorate


def seed_files(
    *paths: str | Path, scope: str = "module", autouse: bool = False, name: str | None = None
) -> Any:
    """A fixture of ``scope`` that loads data files into its group, like ``@seed``:
    ``catalogue = seed_files("data/catalogue.yaml", "data/prices.csv")`` in a test
    module or conftest (relative paths from that file's directory); its value is None.
    """
    if scope not in SEED_SCOPES:
        raise errors.ConfigError(
            f"seed_files(scope={scope!r}): the scope must be one of {', '.join(SEED_SCOPES)}."
        )
    return _seed_fixture(None, scope, paths, _caller_dir(), autouse, name)


def _caller_dir() -> Path:
    """The directory of the module calling seed()/seed_files(): relative paths start there."""
    frame = inspect.currentframe()
    caller = frame.f_back.f_back if frame is not None and frame.f_back is not None else None
    filename = caller.f_globals.get("__file__") if caller is not None else None
    return Path(filename).resolve().parent if filename else Path.cwd()


def _seed_fixture(
    function: Callable[..., Awaitable[Any]] | None,
    scope: str,
    files: Sequence[str | Path],
    base: Path,
    autouse: bool,
    name: str | None,
) -> Any:
    paths = [path if path.is_absolute() else base / path for path in map(Path, files)]
    label = name or (
        function.__name__ if function is not None else ", ".join(p.name for p in paths)
    )
    wanted = list(inspect.signature(function).parameters) if function is not None else []
    method = wanted[:1] == ["self"]  # a seed defined in a test class
    harness = [arg for arg in wanted if arg in _HARNESS_ARGUMENTS]
    others = [arg for arg in wanted[method:] if arg not in _HARNESS_ARGUMENTS]

    def fixture(*bound: Any, **values: Any) -> Iterator[Any]:
        __tracebackhide__ = True
        # Passed on when the seed asks for it too.
        request: pytest.FixtureRequest = (
            values[_REQUEST] if _REQUEST in others else values.pop(_REQUEST)
        )
        item = _current_item()
        if TEST_KEY in item.stash:
            _fail(
                errors.ConfigError(
                    errors.SEED_INSIDE_TEST.format(scope=scope, name=label, nodeid=item.nodeid)
                )
            )
        run = item.config.stash.get(RUN_KEY, None) or _get_run(request)
        loop = item.config.stash[LOOP_KEY]
        call = None
        if function is not None:

            async def call(test: E2ETest) -> Any:
                given: dict[str, Callable[[], Any]] = {
                    "db_session": lambda: test.tx.session,
                    "db_connection": lambda: test.tx.connection,
                    "client": lambda: test.client,
                    "app": lambda: test.app,
                }
                return await function(*bound, **values, **{arg: given[arg]() for arg in harness})

        group = _run_or_fail(loop, run.open_seed_group(label, scope))
        try:
            yield _run_or_fail(loop, run.populate(group, paths, call))
        finally:
            _run_or_fail(loop, run.close_seed_group(group))

    keyword = inspect.Parameter.KEYWORD_ONLY
    parameters = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)] if method else []
    parameters.append(inspect.Parameter(_REQUEST, keyword))
    parameters += [inspect.Parameter(arg, keyword) for arg in others if arg != _REQUEST]
    fixture.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    if function is not None:
        fixture.__name__ = function.__name__
        fixture.__qualname__ = function.__qualname__
        fixture.__doc__ = function.__doc__
        fixture.__module__ = function.__module__
    return pytest.fixture(scope=scope, autouse=autouse, name=name)(fixture)  # type: ignore[call-overload]


PUBLIC_FIXTURES = frozenset(
    {
        "client",
        "db_session",
        "db_connection",
        "app",
        "e2e_database_url",
        "e2e_app_role",
        "e2e_test_database_url",
        "e2e_queries",
        "live_server",
    }
)
