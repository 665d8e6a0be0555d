"""pytest-xdist: one embedded cluster per run, owned by the controller; the template
built once; each worker its own test database, seeing only its own data."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import URL, make_url

from fastapi_e2e import xdist
from fastapi_e2e.errors import ClusterStartError
from fastapi_e2e.xdist import WorkerInfo
from tests.conftest import Admin, dead_pid

# Each test writes a row and checks it is the only one, then records which worker,
# database and server it ran on. Six files so both workers get some.
RECORDING_TEST = """
from pathlib import Path
from sqlalchemy import func, select
from shop import Thing

async def test_{n}(client, db_session, e2e_database_url, worker_id):
    response = await client.post("/things", params={{"name": "row-{n}"}})
    assert response.status_code == 201
    assert await db_session.scalar(select(func.count(Thing.id))) == 1
    server = e2e_database_url.query.get("host", e2e_database_url.host)
    Path("seen-{n}.txt").write_text(f"{{worker_id}} {{e2e_database_url.database}} {{server}}")
"""


def _write_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(**{f"test_{n}": RECORDING_TEST.format(n=n) for n in range(6)})


def _seen(pytester: pytest.Pytester) -> list[tuple[str, str, str]]:
    lines = [p.read_text().split() for p in sorted(Path(pytester.path).glob("seen-*.txt"))]
    return [(worker, database, server) for worker, database, server in lines]


def test_workers_share_one_cluster_and_each_gets_its_own_database(
    cold_embedded: pytest.Pytester,
) -> None:
    _write_tests(cold_embedded)
    result = cold_embedded.runpytest_subprocess("-n", "2", "-p", "xdist")
    result.assert_outcomes(passed=6)
    seen = _seen(cold_embedded)
    assert {worker for worker, _, _ in seen} == {"gw0", "gw1"}
    by_worker = {worker: database for worker, database, _ in seen}
    assert len(set(by_worker.values())) == 2
    for worker, database in by_worker.items():
        assert database.endswith(f"_{worker}")
    assert len({server for _, _, server in seen}) == 1  # one cluster for the run
    result.stdout.fnmatch_lines_random(
        [
            "fastapi-e2e: gw*: embedded cluster of the xdist controller, gw*; "
            "schema template e2e_tpl_* built;*",
            "fastapi-e2e: gw*: embedded cluster of the xdist controller, gw*; "
            "schema template e2e_tpl_* reused;*",
            "fastapi-e2e: embedded cluster in * shared by the workers (initdb); "
            "cluster cache: saved",
        ]
    )
    # The controller stopped the cluster and removed its directory.
    assert not Path(seen[0][2]).exists()


def test_workers_on_an_existing_server_get_distinct_databases(shop: pytest.Pytester, admin) -> None:
    _write_tests(shop)
    result = shop.runpytest_subprocess("-n", "2", "-p", "xdist")
    result.assert_outcomes(passed=6)
    databases = {database for _, database, _ in _seen(shop)}
    assert len(databases) == 2
    assert not databases & set(admin.e2e_databases())  # each worker dropped its own


def test_cluster_failure_on_the_controller_is_reported_by_the_workers(
    cold_embedded: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PG_BINDIR", str(tmp_path / "no-postgres-here"))
    _write_tests(cold_embedded)
    result = cold_embedded.runpytest_subprocess("-n", "2", "-p", "xdist", timeout=120)
    result.assert_outcomes(errors=6)
    result.stdout.fnmatch_lines(["*no-postgres-here*"])


def test_create_db_under_xdist_rebuilds_the_template_once(cold_embedded: pytest.Pytester) -> None:
    _write_tests(cold_embedded)
    cold_embedded.runpytest_subprocess("-n", "2", "-p", "xdist").assert_outcomes(passed=6)
    result = cold_embedded.runpytest_subprocess("-n", "2", "-p", "xdist", "--e2e-create-db")
    result.assert_outcomes(passed=6)
    output = result.stdout.str()
    assert output.count(" built;") == 1, output
    assert output.count(" reused;") == 1, output
    result.stdout.fnmatch_lines(
        ["*shared by the workers (restored from cache); cluster cache: saved"]
    )


def _fake_bindir(initdb: str, postgres: str = "exit 1") -> Path:
    """A PG_BINDIR whose initdb and postgres are these shell scripts; world-readable,
    since they run as the unprivileged user when pytest is root."""
    bindir = Path(tempfile.mkdtemp(prefix="fake-postgres-"))
    bindir.chmod(0o755)
    for name, body in (("initdb", initdb), ("postgres", postgres)):
        (bindir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bindir / name).chmod(0o755)
    return bindir


@pytest.fixture
def broken_bindir() -> Iterator[Path]:
    """PostgreSQL binaries that exist but cannot make a cluster: initdb fails."""
    bindir = _fake_bindir("echo 'initdb: could not write: No space left' >&2\nexit 1")
    yield bindir
    shutil.rmtree(bindir)


def test_cluster_failing_while_workers_start_is_reported_by_each_worker(
    cold_embedded: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, broken_bindir: Path
) -> None:
    # The controller finds these binaries at once; only its cluster thread learns,
    # while the workers import and collect, that initdb fails.
    monkeypatch.setenv("PG_BINDIR", str(broken_bindir))
    _write_tests(cold_embedded)
    result = cold_embedded.runpytest_subprocess("-n", "2", "-p", "xdist", timeout=120)
    result.assert_outcomes(errors=6)
    result.stdout.fnmatch_lines(["*initdb failed (exit 1)*No space left*"])
    assert "shared by the workers" not in result.stdout.str()


def _worker(status: Path) -> WorkerInfo:
    url = make_url("postgresql+asyncpg://postgres@/postgres?host=/nowhere")
    return WorkerInfo(name="gw0", run_id="run", cluster_url=url, cluster_status=status)


def test_worker_waits_for_the_controller_to_say_ready(tmp_path: Path) -> None:
    status = tmp_path / "cluster.status"
    status.write_text("")

    async def main() -> URL:
        waiting = asyncio.ensure_future(_worker(status).wait_for_cluster())
        await asyncio.sleep(0.05)
        assert not waiting.done()
        status.write_text(xdist.READY)
        return await asyncio.wait_for(waiting, 5)

    assert asyncio.run(main()).query["host"] == "/nowhere"


def test_worker_raises_the_controllers_start_error(tmp_path: Path) -> None:
    status = tmp_path / "cluster.status"
    status.write_text("initdb failed (exit 1): disk full")
    with pytest.raises(ClusterStartError, match="disk full"):
        asyncio.run(_worker(status).wait_for_cluster())


def test_worker_gives_up_on_a_controller_that_never_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    status = tmp_path / "cluster.status"
    status.write_text("")
    monkeypatch.setattr(xdist, "WAIT_TIMEOUT", 0.05)
    with pytest.raises(ClusterStartError, match=r"not ready after 0.05 s \(.*cluster\.status"):
        asyncio.run(_worker(status).wait_for_cluster())


def test_workers_sweeping_stale_databases_together_do_not_trip_each_other(
    shop: pytest.Pytester, admin: Admin
) -> None:
    # Databases a killed run left on an existing server: every worker starts by
    # sweeping them, at the same moment. Racing drops used to close one worker's
    # admin connection and fail its tests.
    dead = dead_pid()
    host = socket.gethostname()
    stale = [f"e2e_stale{n}_gw{n}" for n in range(8)]
    for name in stale:
        admin.execute(f"CREATE DATABASE {name}")
        admin.execute(
            f"COMMENT ON DATABASE {name} IS "
            f"'pytest-fastapi-e2e: test database of pid {dead} on {host}, killed'"
        )
    shop.makepyfile(**{f"test_{n}": RECORDING_TEST.format(n=n) for n in range(9)})
    result = shop.runpytest_subprocess("-n", "3", "-p", "xdist")
    result.assert_outcomes(passed=9)
    assert not set(stale) & set(admin.e2e_databases())


@pytest.fixture
def hanging_initdb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Binaries whose initdb hangs; it writes its pid to the returned file first."""
    bindir = _fake_bindir('echo $$ > "$E2E_TEST_MARKER"\nexec sleep 60')
    marker_dir = Path(tempfile.mkdtemp(prefix="hanging-initdb-pid-"))
    marker_dir.chmod(0o777)  # written by initdb, as the unprivileged user
    marker = marker_dir / "initdb.pid"
    monkeypatch.setenv("PG_BINDIR", str(bindir))
    monkeypatch.setenv("E2E_TEST_MARKER", str(marker))
    yield marker
    shutil.rmtree(bindir)
    shutil.rmtree(marker_dir)


def test_ctrl_c_while_the_cluster_starts_ends_the_run_at_once(
    cold_embedded: pytest.Pytester, hanging_initdb: Path
) -> None:
    # The controller does not wait for a start nobody needs any more: it kills initdb.
    _write_tests(cold_embedded)
    command = [sys.executable, "-m", "pytest", "-n", "2", "-p", "xdist", "-p", "no:cacheprovider"]
    run = subprocess.Popen(
        command, cwd=cold_embedded.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 60
        while not hanging_initdb.exists() or not hanging_initdb.read_text().strip():
            assert time.monotonic() < deadline, "initdb never started"
            assert run.poll() is None, run.communicate()[0]
            time.sleep(0.05)
        initdb = int(hanging_initdb.read_text())
        run.send_signal(signal.SIGINT)
        output = run.communicate(timeout=20)[0].decode()
    finally:
        run.kill()
    assert run.returncode == pytest.ExitCode.INTERRUPTED, output
    with pytest.raises(ProcessLookupError):
        os.kill(initdb, 0)
