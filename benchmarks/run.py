"""Benchmark the harness against the other ways of isolating tests, in one run.

    python benchmarks/run.py [--repeat 5] [--tests 500] [--http-tests 400] [--json out.json]
    python benchmarks/run.py --only seeds     # scoped seeds against per-test inserts

Every number comes from real pytest runs in subprocesses, on generated suites in a
temporary directory, against the embedded PostgreSQL cluster. It prints a table of
medians with ratios:

* per-test cost of each isolation strategy, for a test that asks for a database
  session and does nothing else: a bare pytest-asyncio test (no database), the
  harness (``client`` + ``db_session``, rolled back), TRUNCATE of every table after
  each test, drop_all + create_all before each test, and a new engine per test;
  and the harness with a 100-table schema and with one HTTP request per test;
* start-up of the harness, cold (empty cache: initdb, schema, template) and warm;
* wall time of an HTTP suite with ``-n 0`` and ``-n 2`` (pytest-xdist).

Per-test costs are measured inside pytest, from the end of the first test (which
pays for start-up) to the end of the last, divided by the number of tests after it.
The runs being compared are interleaved, one of each per round, and each figure is
the median over the rounds. Subprocesses run with bytecode caching on, as on a
developer's machine, whatever PYTHONDONTWRITEBYTECODE says here.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

TIMING_PLUGIN = """
import json, os, time
import pytest

_state = {"n": 0}

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    if _state["n"] == 0:
        _state["start"] = time.time()  # wall clock: comparable across xdist workers
    yield
    _state["n"] += 1
    _state["first" if _state["n"] == 1 else "last"] = time.perf_counter()
    _state["end"] = time.time()

def pytest_unconfigure(config):
    if _state["n"] > 1:
        per_test = (_state["last"] - _state["first"]) / (_state["n"] - 1)
        worker = getattr(config, "workerinput", {}).get("workerid", "")
        with open(os.environ["BENCH_OUT"] + worker, "w") as out:
            json.dump({"per_test": per_test, "start": _state["start"], "end": _state["end"]}, out)
"""

CONFTEST = '''
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

import bench_app
from fastapi_e2e import E2EConfig


@pytest.fixture(scope="session")
def e2e_config():
    return E2EConfig(
        app="bench_app:create_app",
        metadata="bench_app:Base.metadata",
        database_url_env="DATABASE_URL",
    )


@pytest.fixture(scope="session")
def shared_engine(e2e_database_url):
    return create_async_engine(e2e_database_url)


@pytest.fixture
async def truncated_session(shared_engine):
    """The common alternative: commit freely, TRUNCATE every table afterwards."""
    async with AsyncSession(shared_engine) as session:
        yield session
    tables = ", ".join(table.name for table in bench_app.Base.metadata.sorted_tables)
    async with shared_engine.begin() as connection:
        await connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture
async def recreated_session(shared_engine):
    """Drop and create the schema before each test."""
    async with shared_engine.begin() as connection:
        await connection.run_sync(bench_app.Base.metadata.drop_all)
        await connection.run_sync(bench_app.Base.metadata.create_all)
    async with AsyncSession(shared_engine) as session:
        yield session


@pytest.fixture
async def cloned_session(request, e2e_database_url):
    """A fresh clone of the schema template per test, made and dropped on the critical
    path (what commits mode does without its pool)."""
    import asyncpg
    from fastapi_e2e.database.urls import asyncpg_connect_kwargs
    from fastapi_e2e.fixtures import RUN_KEY

    run = request.config.stash[RUN_KEY]
    kwargs = asyncpg_connect_kwargs(run.admin_url)
    cloned_session.n = getattr(cloned_session, "n", 0) + 1
    name = f"bench_clone_{cloned_session.n}"
    admin = await asyncpg.connect(**kwargs)
    await admin.execute(
        f'CREATE DATABASE "{name}" TEMPLATE "{run.database.template_name}" STRATEGY FILE_COPY'
    )
    engine = create_async_engine(e2e_database_url.set(database=name))
    async with AsyncSession(engine) as session:
        yield session
    await engine.dispose()
    await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    await admin.close()


@pytest.fixture
async def own_engine_session(e2e_database_url):
    """An engine per test (the usual fix for 'attached to a different loop')."""
    engine = create_async_engine(e2e_database_url)
    async with engine.connect() as connection:
        transaction = await connection.begin()
        async with AsyncSession(bind=connection) as session:
            yield session
        await transaction.rollback()
    await engine.dispose()
'''

PYTEST_INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = session
asyncio_default_test_loop_scope = session
"""

WORK = "await asyncio.sleep(0.02)"
GET = "assert (await client.get('/things')).json() == []"
BODIES = {
    "bare": ("", "pass"),
    "harness": ("client, db_session", "pass"),
    "truncate": ("truncated_session", "pass"),
    "drop_create": ("recreated_session", "pass"),
    "engine_per_test": ("own_engine_session", "pass"),
    "harness_get": ("client, db_session", "assert (await client.get('/things')).json() == []"),
    "commits": ("client, db_session", "pass"),
    # Commits mode at steady state: every test spends 20 ms in its own work (as a test
    # of a few requests does), time enough for the pool to replace the database used
    # before; the rollback and TRUNCATE/clone variants run the same body.
    "harness_work": ("client, db_session", WORK),
    "commits_work": ("client, db_session", WORK),
    "harness_get_work": ("client, db_session", WORK + "\n    " + GET),
    "commits_get_work": ("client, db_session", WORK + "\n    " + GET),
    "truncate_work": ("truncated_session", WORK),
    "clone_work": ("cloned_session", WORK),
    "live": (
        "live_server",
        "async with httpx.AsyncClient(base_url=live_server.url) as c:\n"
        "        assert (await c.get('/things')).status_code == 200",
    ),
    "http": (
        "client, db_session",
        "assert (await client.post('/things', params={'name': 'n{n}'})).status_code == 201\n"
        "    assert (await client.get('/things')).json() == ['n{n}']",
    ),
    # 40 tests reading a 500-row seed: written once for the module, or once per test.
    "seed_module": ("catalogue, db_session", "assert await db_session.scalar(COUNT) == 500"),
    "seed_per_test": ("catalogue_each, db_session", "assert await db_session.scalar(COUNT) == 500"),
    "seed_none": ("db_session", "assert await db_session.scalar(COUNT) == 0"),
}

SEED_HEADER = """
from sqlalchemy import func, select
import pytest
from fastapi_e2e import seed
from bench_app import Thing

COUNT = select(func.count()).select_from(Thing)

async def _add_catalogue(db_session):
    db_session.add_all([Thing(name=f"item {i}") for i in range(500)])
    await db_session.flush()

@seed(scope="module")
async def catalogue(db_session):
    await _add_catalogue(db_session)

@pytest.fixture
async def catalogue_each(db_session):
    await _add_catalogue(db_session)
"""


def write_suite(directory: Path, kind: str, count: int) -> None:
    directory.mkdir(parents=True)
    shutil.copy(HERE / "bench_app.py", directory / "bench_app.py")
    (directory / "conftest.py").write_text(CONFTEST)
    (directory / "bench_timing.py").write_text(TIMING_PLUGIN)
    (directory / "pytest.ini").write_text(PYTEST_INI)
    arguments, body = BODIES[kind]
    # Tests spread over files of 50, as a real suite would be.
    for start in range(0, count, 50):
        lines = ["import httpx\n"] if kind == "live" else []
        lines += ["import asyncio\n"] if kind.endswith("_work") else []
        lines += [SEED_HEADER] if kind.startswith("seed_") else []
        if kind.startswith("commits"):
            lines.append("import pytest\npytestmark = pytest.mark.e2e_commits\n")
        lines += [
            f"async def test_{n}({arguments}):\n    " + body.replace("{n}", str(n)) + "\n"
            for n in range(start, min(start + 50, count))
        ]
        (directory / f"test_{kind}_{start:04d}.py").write_text("\n".join(lines))


def suite_dir(work: Path, kind: str, count: int) -> Path:
    """The generated suite of ``count`` tests of ``kind`` under ``work``, written on first use."""
    directory = work / f"{kind}-{count}"
    if not directory.exists():
        write_suite(directory, kind, count)
    return directory


def collect_only(directory: Path, *args: str) -> float:
    """Wall seconds of ``pytest --co`` in ``directory`` (bytecode cached, as developers run)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    command = [sys.executable, "-m", "pytest", "--co", "-q", "-p", "no:cacheprovider", *args]
    started = time.perf_counter()
    subprocess.run(command, cwd=directory, env=env, capture_output=True, check=True)
    return time.perf_counter() - started


def run_pytest(
    directory: Path, *args: str, cache: Path, env_extra: dict[str, str] | None = None
) -> tuple[float, dict[str, float], str]:
    """Run pytest in ``directory``; return wall seconds, the timing plugin's output, stdout."""
    out = directory / "bench-out.json"
    for stale in directory.glob("bench-out.json*"):
        stale.unlink()
    env = {
        **os.environ,
        "BENCH_OUT": str(out),
        "E2E_CACHE_DIR": str(cache),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(directory), os.environ.get("PYTHONPATH")])),
        **(env_extra or {}),
    }
    env.pop("E2E_DATABASE_URL", None)
    # Measure the Python developers run: with bytecode caching. Without it every
    # process recompiles pytest's assertion rewrites and the project's modules (~0.5 s).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "bench_timing"]
    command += args
    started = time.perf_counter()
    result = subprocess.run(command, cwd=directory, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"pytest failed in {directory}:\n{result.stdout[-3000:]}{result.stderr}")
    timing = json.loads(out.read_text()) if out.exists() else {}
    workers = [json.loads(path.read_text()) for path in directory.glob("bench-out.json?*")]
    if workers:  # xdist: the test phase runs from the first start to the last end
        timing = {"test_phase": max(w["end"] for w in workers) - min(w["start"] for w in workers)}
    elif timing:
        timing["test_phase"] = timing["end"] - timing["start"]
    return wall, timing, result.stdout


def started_in(stdout: str) -> float:
    match = re.search(r"started in ([0-9.]+) s", stdout)
    if match is None:
        raise SystemExit(f"no start-up time in the output:\n{stdout[-2000:]}")
    return float(match.group(1))


def live_server_started_in(stdout: str) -> float:
    match = re.search(r"live server ([0-9.]+) s", stdout)
    if match is None:
        raise SystemExit(f"no live server start-up time in the output:\n{stdout[-2000:]}")
    return float(match.group(1))


def measure_live_server(work: Path, cache: Path, repeat: int) -> tuple[float, float]:
    """Median start-up of the live server (uvicorn on the session loop, once per run) as
    the harness's summary reports it, and the median whole 2-test process."""
    live = suite_dir(work, "live", 2)
    run_pytest(live, cache=cache)  # warm the cluster cache and bytecode
    starts, walls = [], []
    for _ in range(repeat):
        wall, _, stdout = run_pytest(live, cache=cache)
        starts.append(live_server_started_in(stdout))
        walls.append(wall)
    return statistics.median(starts), statistics.median(walls)


def measure_seeds(
    work: Path, cache: Path, repeat: int, results: dict[str, float]
) -> list[tuple[str, str, str]]:
    """40 tests reading a 500-row seed: a module-scoped @seed (written once, each test a
    savepoint in the group) against a function-scoped fixture writing it for each
    test, and tests with no seed; interleaved rounds, medians."""
    kinds = ["seed_none", "seed_module", "seed_per_test"]
    per_test: dict[str, list[float]] = {kind: [] for kind in kinds}
    phase: dict[str, list[float]] = {kind: [] for kind in kinds}
    print(f"40 tests reading a 500-row seed, {repeat} interleaved rounds:", flush=True)
    for round_number in range(repeat + 1):  # round 0 warms caches and disk
        for kind in kinds:
            directory = suite_dir(work, kind, 40)
            timing = run_pytest(directory, cache=cache)[1]
            if round_number:
                per_test[kind].append(timing["per_test"] * 1000)
                phase[kind].append(timing["test_phase"] * 1000)
    rows = []
    for kind, label in [
        ("seed_none", "40 tests, no seed (db_session + a count)"),
        ("seed_module", "40 tests, 500-row @seed(scope='module')"),
        ("seed_per_test", "40 tests, 500 rows inserted per test (function fixture)"),
    ]:
        results[f"{kind}_per_test_ms"] = statistics.median(per_test[kind])
        results[f"{kind}_suite_ms"] = statistics.median(phase[kind])
        rows.append(
            (
                label,
                f"{results[f'{kind}_per_test_ms']:.2f} ms/test after the first",
                f"all 40 tests: {results[f'{kind}_suite_ms']:.0f} ms",
            )
        )
    return rows


def measure_commits(work: Path, cache: Path, repeat: int, count: int) -> dict[str, float]:
    """Commits mode's per-test cost over a rolled-back test, interleaved rounds, medians
    of the per-round differences; 10-table schema.

    Steady state: every test spends 20 ms in its own work (the same body in every
    variant), time enough for the pool to make the next database, so the difference
    is what handing one out costs; TRUNCATE after each test and a fresh clone per test
    on the critical path run the same body. Burst: empty tests, faster than the server
    can clone, so each waits for its database."""
    steady = [
        ("harness_work", "rollback: client + db_session, 20 ms of work"),
        ("commits_work", "commits mode, same body"),
        ("harness_get_work", "rollback: same + one GET"),
        ("commits_get_work", "commits mode: same + one GET"),
        ("truncate_work", "TRUNCATE every table after each test, same body"),
        ("clone_work", "fresh clone per test on the critical path, same body"),
    ]
    burst = [
        ("harness", "rollback: client + db_session, empty test"),
        ("commits", "commits mode, empty test (burst: the pool cannot keep up)"),
    ]
    baseline = {
        "commits_work": "harness_work",
        "truncate_work": "harness_work",
        "clone_work": "harness_work",
        "commits_get_work": "harness_get_work",
        "commits": "harness",
    }
    kinds = [kind for kind, _ in steady + burst]
    samples: dict[str, list[float]] = {kind: [] for kind in kinds}
    pool_lines: dict[str, set[str]] = {kind: set() for kind in kinds}
    print(f"commits mode, per-test cost, {count} tests, {repeat} interleaved rounds:", flush=True)
    for round_number in range(repeat + 1):  # round 0 warms caches and disk
        for kind in kinds:
            directory = suite_dir(work, kind, count)
            _, timing, stdout = run_pytest(directory, cache=cache)
            if round_number:
                samples[kind].append(timing["per_test"] * 1000)
                found = re.search(r"commits mode: [^;]*", stdout)
                if found:
                    pool_lines[kind].add(re.sub(r"\(\d+\.\d+ s\)", "(..)", found.group(0)))
    results = {f"{kind}_ms": statistics.median(values) for kind, values in samples.items()}
    print(f"| per test, median of {repeat} ({count} tests) | ms/test | over rollback |")
    print("|---|---|---|")
    for kind, label in steady + burst:
        over = ""
        if kind in baseline:
            paired = statistics.median(
                mine - base
                for mine, base in zip(samples[kind], samples[baseline[kind]], strict=True)
            )
            results[f"{kind}_over_rollback_ms"] = paired
            over = f"{paired:+.2f} ms"
        print(f"| {label} | {results[f'{kind}_ms']:.2f} | {over} |")
    for kind in ("commits_work", "commits_get_work", "commits"):
        print(f"pool, {kind}:", *sorted(pool_lines[kind]), sep="\n  ")
    return results


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def measure_against(work: Path, other_src: Path, repeat: int, count: int) -> None:
    """The harness rows (rolled back; plus one GET) of this checkout against another
    source tree of the plugin (``git worktree add /tmp/old <commit>``, then its
    ``src``), interleaved in one session: the way to tell whether a change made them
    slower on a machine whose speed drifts between days. Same venv for both; the other
    tree is put first on PYTHONPATH."""
    kinds = ["harness", "harness_get"]
    sides = {"this checkout": None, str(other_src): other_src}
    samples: dict[tuple[str, str], list[float]] = {(s, k): [] for s in sides for k in kinds}
    print(f"this checkout against {other_src}, {repeat} interleaved rounds:", flush=True)
    for round_number in range(repeat + 1):  # round 0 warms caches and disk
        for kind in kinds:
            directory = suite_dir(work, kind, count)
            for side, src in sides.items():
                extra = {}
                if src is not None:
                    extra["PYTHONPATH"] = os.pathsep.join([str(src), str(directory)])
                cache = work / f"cache-{'other' if src else 'this'}"
                timing = run_pytest(directory, cache=cache, env_extra=extra)[1]
                if round_number:
                    samples[(side, kind)].append(timing["per_test"] * 1000)
    for kind in kinds:
        mine, theirs = (statistics.median(samples[(side, kind)]) for side in sides)
        print(
            f"| {kind} | this checkout {mine:.3f} ms/test | other {theirs:.3f} ms/test "
            f"| {mine - theirs:+.3f} ms |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per measurement (median)")
    parser.add_argument("--tests", type=int, default=500, help="tests per isolation suite")
    parser.add_argument("--http-tests", type=int, default=400, help="tests in the xdist suite")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--only",
        choices=["live-server", "seeds", "commits"],
        help="measure only this (the live server's start-up, scoped seeds, or commits "
        "mode's per-test cost) and print its rows",
    )
    parser.add_argument(
        "--against",
        type=Path,
        help="a source directory of another version of the plugin (its src/): compare "
        "the harness rows of this checkout with it, interleaved, and print them",
    )
    options = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="e2e-bench-"))
    cache = work / "cache"
    results: dict[str, float] = {}
    rows: list[tuple[str, str, str]] = []
    try:
        print(f"machine: {machine()}", flush=True)
        if options.against is not None:
            measure_against(work, options.against.resolve(), options.repeat, options.tests)
            return
        if options.only == "live-server":
            start, wall = measure_live_server(work, cache, options.repeat)
            print(
                f"| live server start-up (median of {options.repeat}) | {start * 1000:.0f} ms "
                f"| whole 2-test pytest process {wall:.2f} s |"
            )
            return
        if options.only == "seeds":
            for label, shown, ratio in measure_seeds(work, cache, options.repeat, results):
                print(f"| {label} | {shown} | {ratio} |")
            if options.json is not None:
                options.json.write_text(json.dumps({"machine": machine(), **results}, indent=2))
            return

        if options.only == "commits":
            measure_commits(work, cache, options.repeat, min(options.tests, 200))
            return

        # (result key, suite kind, tests, extra environment). The runs are interleaved
        # round-robin, one of each per round: this machine's speed drifts by tens of
        # percent over minutes, and a drift must hit every variant alike, not one.
        variants = [
            ("bare", "bare", options.tests, {}),
            ("harness", "harness", options.tests, {}),
            ("truncate", "truncate", min(options.tests, 200), {}),
            ("drop_create", "drop_create", min(options.tests, 200), {}),
            ("engine_per_test", "engine_per_test", min(options.tests, 200), {}),
            ("harness_get", "harness_get", options.tests, {}),
            ("harness_recording_off", "harness", options.tests, {"E2E_RECORDING": "off"}),
            ("harness_get_recording_off", "harness_get", options.tests, {"E2E_RECORDING": "off"}),
            ("harness_100_tables", "harness", options.tests, {"BENCH_EXTRA_TABLES": "99"}),
        ]
        samples: dict[str, list[float]] = {key: [] for key, *_ in variants}
        print(f"per-test cost, {options.repeat} interleaved rounds:", flush=True)
        for round_number in range(options.repeat + 1):  # round 0 warms caches and disk
            for key, kind, count, env in variants:
                directory = suite_dir(work, kind, count)  # env changes the run, not the files
                timing = run_pytest(directory, cache=cache, env_extra=env)[1]
                if round_number:
                    samples[key].append(timing["per_test"] * 1000)
            if round_number:
                print(f"  round {round_number} done", flush=True)
        for key, values in samples.items():
            results[f"{key}_ms"] = statistics.median(values)
            spread = f"{min(values):.2f}-{max(values):.2f}"
            print(f"  {key}: median {results[f'{key}_ms']:.3f} ms/test ({spread})", flush=True)
        bare = results["bare_ms"]
        for key, label in [
            ("harness", "harness: client + db_session, rolled back"),
            ("truncate", "TRUNCATE every table after each test"),
            ("drop_create", "drop_all + create_all before each test"),
            ("engine_per_test", "new engine per test"),
            ("harness_get", "harness + one GET per test"),
        ]:
            value = results[f"{key}_ms"]
            # Paired: the difference within each round, then the median of those, so
            # a round the machine ran slow in counts against both sides alike.
            paired = statistics.median(
                mine - base for mine, base in zip(samples[key], samples["bare"], strict=True)
            )
            results[f"{key}_over_bare_ms"] = paired
            rows.append(
                (
                    label,
                    f"{value:.2f} ms",
                    f"{value / bare:.1f}x bare, +{paired:.2f} ms (median of per-round differences)",
                )
            )
        for key, label in [
            ("harness", "harness, report recording off"),
            ("harness_get", "harness + one GET, report recording off"),
        ]:
            value, on = results[f"{key}_recording_off_ms"], results[f"{key}_ms"]
            rows.append((label, f"{value:.2f} ms", f"recording costs {on - value:+.2f} ms/test"))
        wide = results["harness_100_tables_ms"]
        rows.append(
            (
                "harness, 100-table schema",
                f"{wide:.2f} ms",
                f"{wide / results['harness_ms']:.2f}x the 10-table schema",
            )
        )
        rows.insert(0, ("bare pytest-asyncio test (no database)", f"{bare:.2f} ms", "1.0x"))

        print("plugin installed, unused: `pytest --co` of a one-test directory:", flush=True)
        plain = work / "plain"
        plain.mkdir()
        (plain / "test_plain.py").write_text("def test_plain():\n    pass\n")
        with_plugin, without = [], []
        for _ in range(max(options.repeat, 5) * 2):  # paired, interleaved
            with_plugin.append(collect_only(plain))
            without.append(collect_only(plain, "-p", "no:fastapi_e2e"))
        unused_cost = statistics.median(a - b for a, b in zip(with_plugin, without, strict=True))
        results["plugin_unused_ms"] = unused_cost * 1000
        rows.append(
            (
                "plugin installed, run not using it (`pytest --co`, 1 test)",
                f"{unused_cost * 1000:+.0f} ms",
                f"median of paired differences; without the plugin "
                f"{statistics.median(without):.2f} s",
            )
        )
        print(f"  {unused_cost * 1000:+.0f} ms", flush=True)

        print("start-up (harness's own 'started in'), median of", options.repeat, "runs:")
        one = work / "one"
        write_suite(one, "harness", 1)
        cold, warm, cold_wall, warm_wall = [], [], [], []
        for attempt in range(options.repeat):
            fresh = work / f"cold-cache-{attempt}"
            wall, _, stdout = run_pytest(one, cache=fresh)
            cold.append(started_in(stdout))
            cold_wall.append(wall)
            wall, _, stdout = run_pytest(one, cache=fresh)
            warm.append(started_in(stdout))
            warm_wall.append(wall)
        for name, starts, walls in [("cold", cold, cold_wall), ("warm", warm, warm_wall)]:
            results[f"{name}_start_s"] = statistics.median(starts)
            results[f"{name}_wall_s"] = statistics.median(walls)
            rows.append(
                (
                    f"{name} start ({'empty cache' if name == 'cold' else 'cache present'})",
                    f"{results[f'{name}_start_s']:.2f} s",
                    f"whole 1-test pytest process {results[f'{name}_wall_s']:.2f} s",
                )
            )
            print(f"  {name}: {results[f'{name}_start_s']:.2f} s", flush=True)

        print("live server start-up (uvicorn, once per run), median of", options.repeat, "runs:")
        start, wall = measure_live_server(work, cache, options.repeat)
        results.update(live_server_start_s=start, live_server_wall_s=wall)
        rows.append(
            (
                "live server start-up (first test asking for live_server)",
                f"{start * 1000:.0f} ms",
                f"whole 2-test pytest process {wall:.2f} s",
            )
        )
        print(f"  {start * 1000:.0f} ms", flush=True)

        print(f"{options.http_tests}-test HTTP suite, wall time, median of {options.repeat}:")
        http = work / "http"
        write_suite(http, "http", options.http_tests)
        run_pytest(http, "-p", "xdist", "-n", "0", cache=cache)
        runs: dict[str, list[tuple[float, dict[str, float], str]]] = {"0": [], "2": []}
        for _ in range(options.repeat):  # interleaved, like the per-test rounds
            for workers, samples_of in runs.items():
                samples_of.append(run_pytest(http, "-p", "xdist", "-n", workers, cache=cache))
        serial, parallel = (statistics.median(r[0] for r in runs[w]) for w in ("0", "2"))
        serial_tests, parallel_tests = (
            statistics.median(r[1]["test_phase"] for r in runs[w]) for w in ("0", "2")
        )
        results.update(
            http_n0_s=serial,
            http_n2_s=parallel,
            http_n0_tests_s=serial_tests,
            http_n2_tests_s=parallel_tests,
        )
        suite = f"{options.http_tests} HTTP tests"
        rows.append((f"{suite}, -n 0, whole run", f"{serial:.2f} s", ""))
        rows.append(
            (f"{suite}, -n 2, whole run", f"{parallel:.2f} s", f"{serial / parallel:.2f}x -n 0")
        )
        rows.append((f"{suite}, -n 0, tests only", f"{serial_tests:.2f} s", ""))
        rows.append(
            (
                f"{suite}, -n 2, tests only (first start to last end)",
                f"{parallel_tests:.2f} s",
                f"{serial_tests / parallel_tests:.2f}x -n 0",
            )
        )
        # Amdahl: each worker pays at least what the single process pays outside its
        # tests (interpreter, imports, collection, start-up, exit), so -n 2 can at best
        # halve the tests, never that fixed part.
        fixed = serial - serial_tests
        best = serial / (fixed + serial_tests / 2)
        results.update(http_fixed_s=fixed, http_best_ratio=best)
        rows.append(
            (
                f"{suite}, fixed cost of one process (-n 0 whole run minus its tests)",
                f"{fixed:.2f} s",
                f"best whole-run ratio -n 2 could reach: {best:.2f}x",
            )
        )

        print()
        print(f"| measurement (median of {options.repeat}) | value | ratio |")
        print("|---|---|---|")
        for label, shown, ratio in rows:
            print(f"| {label} | {shown} | {ratio} |")
        if options.json is not None:
            options.json.write_text(json.dumps({"machine": machine(), **results}, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
