"""Behaviour 1: the embedded default cluster (as root: dropped privileges), its cleanup,
and that a SIGKILLed pytest leaves no server behind."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from fastapi_e2e.database import cluster
from tests.conftest import dead_pid


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); read its state.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (OSError, IndexError):
        return True
    return state != "Z"


@pytest.fixture
def embedded(shop: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """The shop app on the embedded default: no server URL given."""
    monkeypatch.delenv("E2E_DATABASE_URL")
    return shop


RECORD_SERVER = """
import os, pathlib
from fastapi_e2e.fixtures import RUN_KEY

def record(request):
    run = request.config.stash[RUN_KEY]
    host = run.url.query["host"]
    pid = int((pathlib.Path(host) / "data" / "postmaster.pid").read_text().split()[0])
    pathlib.Path("server.txt").write_text(f"{pid} {host}")
"""


def test_embedded_cluster_serves_the_tests_and_is_removed_at_exit(
    embedded: pytest.Pytester,
) -> None:
    embedded.makepyfile(
        helper=RECORD_SERVER,
        test_embedded="""
        from sqlalchemy import text
        from helper import record

        async def test_real_postgres(client, db_connection, request):
            record(request)
            version = await db_connection.scalar(text("SHOW server_version_num"))
            assert int(version) >= 100000
            user = await db_connection.scalar(text("SELECT current_user"))
            assert user == "postgres"
            assert (await db_connection.scalar(text("SHOW fsync"))) == "off"
            assert (await client.post("/things", params={"name": "x"})).status_code == 201
        """,
    )
    result = embedded.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["fastapi-e2e: database: embedded PostgreSQL cluster (default)*"])
    pid, host = (embedded.path / "server.txt").read_text().split()
    assert not _alive(int(pid))
    assert not Path(host).exists()


def test_runs_postgres_as_an_unprivileged_user_when_root(embedded: pytest.Pytester) -> None:
    if os.geteuid() != 0:
        pytest.skip("only meaningful when pytest runs as root")
    embedded.makepyfile(
        helper=RECORD_SERVER,
        test_user="""
        import os, pathlib
        from helper import record

        async def test_server_user(db_session, request):
            record(request)
            pid = pathlib.Path("server.txt").read_text().split()[0]
            assert os.stat(f"/proc/{pid}").st_uid != 0
        """,
    )
    embedded.runpytest_subprocess().assert_outcomes(passed=1)


def test_sigkilled_pytest_leaves_no_server(embedded: pytest.Pytester) -> None:
    embedded.makepyfile(
        helper=RECORD_SERVER,
        test_killed="""
        import os, signal
        from helper import record

        async def test_dies(db_session, request):
            record(request)
            os.kill(os.getpid(), signal.SIGKILL)
        """,
    )
    embedded.runpytest_subprocess()
    pid, host = (embedded.path / "server.txt").read_text().split()
    deadline = time.monotonic() + 10
    while _alive(int(pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(int(pid)), "postgres outlived the SIGKILLed pytest"
    # Its run directory is left behind, for the janitor of the next run.
    assert Path(host).exists()
    assert cluster.remove_stale_run_dirs(Path(host).parent) == [Path(host)]
    assert not Path(host).exists()


def test_janitor_keeps_run_dirs_of_live_runs_and_foreign_dirs(tmp_path: Path) -> None:
    live = tmp_path / f"{cluster.RUN_DIR_PREFIX}live"
    live.mkdir()
    (live / cluster.OWNER_FILE).write_text(str(os.getpid()))
    foreign = tmp_path / f"{cluster.RUN_DIR_PREFIX}foreign"
    foreign.mkdir()  # no owner file: not ours to judge
    assert cluster.remove_stale_run_dirs(tmp_path) == []
    assert live.exists()
    assert foreign.exists()


def test_janitor_stops_a_stale_server_and_removes_its_dir(tmp_path: Path) -> None:
    import subprocess

    stale = tmp_path / f"{cluster.RUN_DIR_PREFIX}stale"
    (stale / "data").mkdir(parents=True)
    (stale / cluster.OWNER_FILE).write_text(str(dead_pid()))
    server = subprocess.Popen(["sleep", "60"])
    (stale / "data" / "postmaster.pid").write_text(f"{server.pid}\n")
    try:
        assert cluster.remove_stale_run_dirs(tmp_path) == [stale]
        assert server.wait(timeout=5) == -signal.SIGQUIT
        assert not stale.exists()
    finally:
        server.kill()


def test_janitor_removes_status_files_of_dead_controllers_only(tmp_path: Path) -> None:
    gone = tmp_path / f"{cluster.RUN_DIR_PREFIX}abc_1-{dead_pid()}{cluster.STATUS_SUFFIX}"
    half = gone.with_name(gone.name + ".partial")  # killed while replacing it
    live = tmp_path / f"{cluster.RUN_DIR_PREFIX}def_2-{os.getpid()}{cluster.STATUS_SUFFIX}"
    for status in (gone, half, live):
        status.write_text("ready")
    cluster.remove_stale_run_dirs(tmp_path)
    assert not gone.exists()
    assert not half.exists()
    assert live.exists()
    assert cluster.status_file(tmp_path / f"{cluster.RUN_DIR_PREFIX}x").name == (
        f"{cluster.RUN_DIR_PREFIX}x-{os.getpid()}{cluster.STATUS_SUFFIX}"
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="the binaries run as another user only as root")
def test_binaries_the_server_user_cannot_run_are_a_clear_error(
    embedded: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Root sees them as executable; the unprivileged user PostgreSQL runs as cannot
    # reach them (tmp_path is private to root).
    bindir = tmp_path / "private-bin"
    bindir.mkdir()
    for name in ("initdb", "postgres"):
        (bindir / name).write_text("#!/bin/sh\nexit 0\n")
        (bindir / name).chmod(0o755)
    monkeypatch.setenv("PG_BINDIR", str(bindir))
    monkeypatch.setenv("E2E_CACHE_DIR", str(tmp_path / "cache"))
    embedded.makepyfile("async def test_needs_db(db_session):\n    pass\n")
    result = embedded.runpytest_subprocess()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*Could not run {bindir}/initdb as 'postgres'*Permission*"])
