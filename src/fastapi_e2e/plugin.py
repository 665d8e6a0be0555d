"""pytest registration: options, ini keys, collection hooks, report header and sections.

The fixtures themselves live in ``fastapi_e2e.fixtures``.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Generator
from importlib import metadata
from typing import Any

import pytest

from fastapi_e2e import compat, errors, fixtures, xdist
from fastapi_e2e.config import (
    INI_FIELDS,
    OPTIONS,
    config_from_ini,
    environment_templates,
    resolve_settings,
)
from fastapi_e2e.database import registration
from fastapi_e2e.database.address import hand_off, settle
from fastapi_e2e.database.cache import default_cache_dir
from fastapi_e2e.diagnosis import notes
from fastapi_e2e.errors import ConfigError
from fastapi_e2e.server import loop_thread


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("fastapi-e2e", "end-to-end FastAPI tests (pytest-fastapi-e2e)")
    for option in OPTIONS:
        env = f" Environment: {option.env}." if option.env else ""
        if option.flag_only:
            group.addoption(
                option.flag,
                dest=option.dest,
                action="store_true",
                default=None,
                help=option.help + env,
            )
        else:
            group.addoption(option.flag, dest=option.dest, default=None, help=option.help + env)
        parser.addini(option.dest, help=option.help, default=None)
    for field in INI_FIELDS:
        parser.addini(field.key, help=field.help, type=field.kind, default=None)


_DIALECTS_KEY = pytest.StashKey[bool]()


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    """Before any conftest imports the app: register the wired dialects, settle the
    test database's address and set the environment the app's settings read."""
    _register_dialects(early_config)
    _settle(early_config, vars(early_config.known_args_namespace))


def _settle(config: pytest.Config, cli: dict[str, Any]) -> None:
    """Resolve the settings and the ini's E2EConfig fields, settle the address, and set
    the ini's environment variables (restored when the session ends)."""
    if fixtures.ADDRESS_KEY in config.stash:
        return
    ini = {option.dest: config.getini(option.dest) for option in OPTIONS}
    try:
        settings = resolve_settings(
            cli={option.dest: cli.get(option.dest) for option in OPTIONS},
            env=os.environ,
            ini=ini,
        )
        base_dir = config.inipath.parent if config.inipath is not None else config.rootpath
        ini_config = config_from_ini(config.getini, base_dir)
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    server = settings.db_url.value
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    address = settle(str(server) if server is not None else None, worker)
    config.stash[fixtures.SETTINGS_KEY] = settings
    config.stash[fixtures.INI_CONFIG_KEY] = ini_config
    config.stash[fixtures.ADDRESS_KEY] = address
    environment = address.environment(
        environment_templates(ini_config.get("database_url_env"), ini_config.get("env"))
    )
    if server is None and config.pluginmanager.has_plugin("xdist"):
        environment.update(hand_off(address))  # workers settle the same port and password
    _set_environment(config, environment)


def _set_environment(config: pytest.Config, values: dict[str, str]) -> None:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)

    def restore() -> None:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    config.add_cleanup(restore)


def _register_dialects(config: pytest.Config) -> None:
    if not config.stash.get(_DIALECTS_KEY, False):
        registration.register()
        config.stash[_DIALECTS_KEY] = True
        # Runs however the session ends (a usage error, a broken conftest) too.
        config.add_cleanup(registration.deregister)


MIN_PYTEST_ASYNCIO = (1, 1)


def _check_pytest_asyncio(config: pytest.Config) -> None:
    """pytest-asyncio runs the harness's loop: refuse to start without a usable one."""
    if not config.pluginmanager.has_plugin("asyncio"):
        raise pytest.UsageError(errors.NO_PYTEST_ASYNCIO)
    found = metadata.version("pytest-asyncio")
    numbers = tuple(int(part) for part in found.split(".")[:2] if part.isdigit())
    if numbers < MIN_PYTEST_ASYNCIO:
        raise pytest.UsageError(
            errors.OLD_PYTEST_ASYNCIO.format(
                found=found, needed=".".join(map(str, MIN_PYTEST_ASYNCIO))
            )
        )


def pytest_configure(config: pytest.Config) -> None:
    _check_pytest_asyncio(config)
    _register_dialects(config)  # the plugin was loaded after the initial conftests
    _settle(config, {option.dest: config.getoption(option.dest) for option in OPTIONS})
    settings = config.stash[fixtures.SETTINGS_KEY]
    try:
        settings.server_url()  # validated now, so a bad URL is a usage error at start
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.addinivalue_line(
        "markers",
        f"{fixtures.COMMITS_MARKER}: the test gets a database of its own, cloned from the "
        "schema template, where the app and db_session commit for real (pytest-fastapi-e2e)",
    )
    if not config.pluginmanager.has_plugin("fastapi_e2e.fixtures"):
        config.pluginmanager.register(fixtures, "fastapi_e2e.fixtures")
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        config.stash[fixtures.WORKER_KEY] = xdist.worker_info(workerinput)
    elif config.pluginmanager.has_plugin("xdist"):
        config.pluginmanager.register(
            xdist.XdistController(settings, config.stash[fixtures.ADDRESS_KEY]),
            "fastapi_e2e.xdist",
        )
        fixtures.freeze_heap_at_exit()  # the conftest's imports make this heap large too


def pytest_report_header(config: pytest.Config) -> list[str]:
    settings = config.stash[fixtures.SETTINGS_KEY]
    url = settings.server_url()
    if url is None:
        database = "embedded PostgreSQL cluster (default)"
    else:
        from fastapi_e2e.database.urls import mask

        database = f"{mask(url)} (from {settings.db_url.source})"
    timeout = settings.lifespan_timeout
    if url is None:
        cache = settings.cache_dir
        where = cache.value if cache.value is not None else default_cache_dir()
        reuse = f"cluster cache: {where} ({cache.source})"
    else:
        reuse = "schema templates cached on that server"
    if settings.create_db.value:
        reuse += f"; template rebuilt (--e2e-create-db, from {settings.create_db.source})"
    lines = []
    ini = config.stash[fixtures.INI_CONFIG_KEY]
    if ini:
        keys = ", ".join(f"e2e_{name}" for name in ini)
        names = environment_templates(ini.get("database_url_env"), ini.get("env"))
        lines.append(
            f"fastapi-e2e: ini keys: {keys}"
            + (f"; set before the conftests: {', '.join(names)}" if names else "")
        )
    return [
        *lines,
        f"fastapi-e2e: database: {database}; "
        f"lifespan timeout: {timeout.value:g} s ({timeout.source}); "
        "async tests run on the session event loop",
        f"fastapi-e2e: {reuse}; what was reused or built is in the summary at the end",
    ]


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    summary = config.stash.get(fixtures.SUMMARY_KEY, None)
    if summary is not None:
        terminalreporter.write_line(f"fastapi-e2e: {summary}")
    controller = config.pluginmanager.get_plugin("fastapi_e2e.xdist")
    for line in getattr(controller, "summaries", []):
        terminalreporter.write_line(f"fastapi-e2e: {line}")


@pytest.hookimpl(tryfirst=True)  # before xdist sends workeroutput to the controller
def pytest_sessionfinish(session: pytest.Session) -> None:
    output = getattr(session.config, "workeroutput", None)
    summary = session.config.stash.get(fixtures.SUMMARY_KEY, None)
    if output is not None and summary is not None:
        output[xdist.SUMMARY] = summary


def _is_async_test(item: pytest.Function) -> bool:
    function = getattr(item.obj, "hypothesis", None)
    target = function.inner_test if function is not None else item.obj
    return inspect.iscoroutinefunction(target)


# Innermost wrapper: runs before pytest-asyncio's wrapper turns marked coroutine
# functions into its own items, so the marker we add here is the one it reads.
@pytest.hookimpl(hookwrapper=True, trylast=True)
def pytest_pycollect_makeitem(
    collector: pytest.Module | pytest.Class, name: str, obj: object
) -> Generator[None, Any, None]:
    outcome = yield
    result = outcome.get_result()
    items = result if isinstance(result, list) else [result]
    for item in items:
        if isinstance(item, pytest.Function) and _is_async_test(item):
            _pin_to_session_loop(item)


def _pin_to_session_loop(item: pytest.Function) -> None:
    """Run an async test on the session loop unless it names another loop scope itself."""
    marker = item.get_closest_marker("asyncio")
    kwargs = dict(marker.kwargs) if marker is not None else {}
    if kwargs.get("loop_scope") or kwargs.get("scope"):
        return  # explicit: respected, and refused at setup if it uses harness fixtures
    kwargs["loop_scope"] = "session"
    item.add_marker(pytest.mark.asyncio(**kwargs), append=False)


# Outermost wrapper: sets the loop scope before pytest-asyncio's wrapper reads it.
@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest) -> Any:
    """Run async fixtures that name no loop scope on the session loop, like the tests.

    A function-scoped async fixture would otherwise get a loop of its own, and any
    database or client object it touched would be "attached to a different loop".
    """
    if isinstance(request.node, pytest.Item):
        fixtures.start_before_fixture(fixturedef, request.node)
    # Each fixture is looked at once: this hook runs for every fixture of every test.
    seen = request.config.stash.setdefault(_SEEN_FIXTURES_KEY, set())
    if fixturedef not in seen:
        seen.add(fixturedef)
        function = getattr(fixturedef.func, "__func__", fixturedef.func)
        if _is_async_fixture(fixturedef) and (
            getattr(function, compat.LOOP_SCOPE_ATTRIBUTE, None) is None
        ):
            setattr(function, compat.LOOP_SCOPE_ATTRIBUTE, "session")
    helper = _loop_helper(request.config)
    if helper is None or not _is_async_fixture(fixturedef):
        return (yield)
    # A sync test's live_server runs the loop in a helper thread; pytest-asyncio runs
    # this fixture's setup and teardown on the main thread: hand the loop back for
    # both (finalizers run last-in first-out: pause, its teardown, resume).
    fixturedef.addfinalizer(helper.resume)
    helper.pause()
    try:
        result = yield
    finally:
        helper.resume()
    fixturedef.addfinalizer(helper.pause)
    return result


def _loop_helper(config: pytest.Config) -> Any:
    loop = config.stash.get(fixtures.LOOP_KEY, None)
    return loop_thread.thread_of(loop) if loop is not None else None


def _is_async_fixture(fixturedef: pytest.FixtureDef[Any]) -> bool:
    function = getattr(fixturedef.func, "__func__", fixturedef.func)
    return inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function)


_SEEN_FIXTURES_KEY = pytest.StashKey[set[pytest.FixtureDef[Any]]]()
_PER_TEST_FIXTURES = fixtures.PUBLIC_FIXTURES - {"e2e_database_url"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests that use a per-test fixture of the harness (not one of the same
    name the project defines or parametrizes)."""
    for item in items:
        names = _PER_TEST_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        if any(_resolves_to_harness(item, name) for name in names):
            item.stash[fixtures.USES_HARNESS_KEY] = True
            if item.get_closest_marker(fixtures.COMMITS_MARKER) is not None:
                item.stash[fixtures.COMMITS_KEY] = True
            if isinstance(item, pytest.Function) and not _is_async_test(item):
                item.stash[fixtures.SYNC_TEST_KEY] = True


def _resolves_to_harness(item: pytest.Item, name: str) -> bool:
    """Whether the fixture ``name`` the test gets is the harness's, or one of the
    project's that wraps it (asks for ``name`` itself)."""
    for function, argnames in reversed(compat.fixture_functions(item, name)):
        if getattr(function, "__module__", None) == fixtures.__name__:
            return True
        if name not in argnames:
            return False
    return False


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    test = item.stash.get(fixtures.TEST_KEY, None)
    reported = item.stash.get(_REPORTED_KEY, False)
    if (
        test is not None
        and test.commits
        and report.failed
        and test.keep_for is None
        and call.when != "teardown"  # by then the test's end has given its database back
    ):
        _keep_database(item, test, report)
    if test is not None and report.failed and call.when != "setup" and not reported:
        from fastapi_e2e.diagnosis import report as report_module

        item.stash[_REPORTED_KEY] = True
        full = item.config.get_verbosity() >= 2
        text = report_module.section_text(test.recording, full=full)
        if text is not None:
            report.sections.append((report_module.SECTION, text))
    settings = item.config.stash[fixtures.SETTINGS_KEY]
    if settings.trace.value != "off":
        item.stash.setdefault(_PHASES_KEY, []).append(report)
        if call.when == "teardown" and test is not None:  # only tests using the harness
            _write_trace(item, test, settings)
    if call.when == "teardown":
        # Items live for the whole session: keeping each test's objects (its recorded
        # bodies, its session) would grow with the suite, and a rerun of the item
        # (pytest-rerunfailures) would be handed the finished test's closed client.
        _forget(item, fixtures.TEST_KEY)
        _forget(item, _REPORTED_KEY)
        _forget(item, _PHASES_KEY)


def _keep_database(item: pytest.Item, test: Any, report: pytest.TestReport) -> None:
    """Under --e2e-keep-failed, keep a failed commits-mode test's database and say where."""
    if not item.config.stash[fixtures.SETTINGS_KEY].keep_failed.value:
        return
    test.keep_for = item.nodeid
    from fastapi_e2e.database.urls import mask

    url = test.run.own_database_url(test.database_name)
    # No password in the psql line: psql asks for it (or reads ~/.pgpass, PGPASSWORD).
    dsn = f"postgresql://{url.username}@{url.host}:{url.port}/{url.database}"
    report.sections.append(
        (
            "fastapi-e2e: kept database",
            errors.KEPT_DATABASE.format(
                name=test.database_name,
                url=mask(url),
                dsn=dsn,
                password_hint=" (password: the one of the URL above)" if url.password else "",
                lifetime=errors.KEPT_ON_EMBEDDED_CLUSTER
                if test.run.settings.server_url() is None  # xdist workers' too
                else errors.KEPT_ON_SERVER,
            ),
        )
    )


def _forget(item: pytest.Item, key: pytest.StashKey[Any]) -> None:
    if key in item.stash:
        del item.stash[key]


_REPORTED_KEY = pytest.StashKey[bool]()
_PHASES_KEY = pytest.StashKey[list[pytest.TestReport]]()


def _write_trace(item: pytest.Item, test: Any, settings: Any) -> None:
    phases = item.stash.get(_PHASES_KEY, [])
    failed = [phase for phase in phases if phase.failed]
    if settings.trace.value == "retain-on-failure" and not failed:
        return
    outcome = "failed" if failed else ("skipped" if any(p.skipped for p in phases) else "passed")
    captured = [
        (f"{title} ({phase.when})", text)
        for phase in phases
        for title, text in (
            ("log", phase.caplog),
            ("stdout", phase.capstdout),
            ("stderr", phase.capstderr),
        )
        if text
    ]
    # From xdist itself, not PYTEST_XDIST_WORKER: a pytest started from inside a
    # worker (pytester) inherits that variable without being a worker.
    worker = getattr(item.config, "workerinput", {}).get("workerid")
    # Relative to where pytest was started, whatever the test did to the cwd.
    directory = item.config.invocation_params.dir / str(settings.trace_dir.value)
    from fastapi_e2e.diagnosis import artifact
    from fastapi_e2e.diagnosis import report as report_module

    stem = artifact.trace_stem(directory, item.nodeid, worker)
    report_module.write_trace_files(
        test.recording,
        stem,
        nodeid=item.nodeid,
        outcome=outcome,
        duration=sum(phase.duration for phase in phases),
        failure="\n\n".join(phase.longreprtext for phase in failed) or None,
        captured=captured,
        database=(
            {"mode": "commits", "name": test.database_name, "kept": test.keep_for is not None}
            if test.commits
            else {"mode": "rollback", "name": test.run.url.database, "kept": False}
        ),
    )


def _add_note(exc: BaseException, note: str | None) -> None:
    if note is None or note in getattr(exc, "__notes__", ()):
        return
    notes.add_note(exc, note)
    if isinstance(exc, pytest.fail.Exception) and not exc.pytrace:
        exc.msg = f"{exc.msg}\n\n{note}"  # pytest shows only the message of these


def _explain(item: pytest.Item, exc: BaseException) -> None:
    """Notes under a failing test's error: known causes, and server exceptions seen."""
    _add_note(exc, notes.explain(exc))
    test = item.stash.get(fixtures.TEST_KEY, None)
    if test is not None and not isinstance(exc, pytest.skip.Exception):
        from fastapi_e2e.diagnosis import report as report_module

        _add_note(exc, report_module.server_error_note(test.recording))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    try:
        return (yield)
    except BaseException as exc:
        _add_note(exc, notes.explain(exc))
        raise


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    try:
        result = yield
    except BaseException as exc:
        _explain(item, exc)
        raise
    test = item.stash.get(fixtures.TEST_KEY, None)
    if test is not None and item.config.stash[fixtures.SETTINGS_KEY].strict_server_errors.value:
        from fastapi_e2e.diagnosis import report as report_module

        failure = report_module.strict_failure(test.recording)
        if failure is not None:
            pytest.fail(failure, pytrace=False)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    try:
        return (yield)
    except BaseException as exc:
        _add_note(exc, notes.explain(exc))
        raise
