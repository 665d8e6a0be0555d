"""Behaviours: --e2e-trace writes a JSON and an HTML trace per test, where and when asked."""

from __future__ import annotations

import json

import pytest

from tests.diagnosis.conftest import NO_HANG

TESTS = """
import logging
from sqlalchemy import text

async def test_passes(client):
    assert (await client.get("/things")).status_code == 200

async def test_fails(client, db_session):
    logging.getLogger("app").warning("logged by the failing test")
    await db_session.execute(text("SELECT 1"))
    await client.get("/report/handled")
    assert False
"""


def test_retain_on_failure_keeps_traces_of_failed_tests_only(report: pytest.Pytester) -> None:
    report.makepyfile(test_traces=TESTS)
    result = report.runpytest_subprocess("--e2e-trace=retain-on-failure", timeout=NO_HANG)
    result.assert_outcomes(passed=1, failed=1)
    files = sorted(p.name for p in (report.path / ".e2e-traces").iterdir())
    assert len(files) == 2
    assert all(name.startswith("test_traces.py_test_fails-") for name in files)
    data = json.loads(next((report.path / ".e2e-traces").glob("*.json")).read_text())
    assert data["nodeid"] == "test_traces.py::test_fails"
    assert data["outcome"] == "failed"
    assert "assert False" in data["failure"]
    [exchange] = data["exchanges"]
    assert (exchange["method"], exchange["target"], exchange["status"]) == (
        "GET",
        "/report/handled",
        500,
    )
    assert exchange["server_errors"][0]["headline"].startswith("report_app.Handled")
    assert exchange["curl"] == "curl http://localhost:8000/report/handled"
    assert [s["sql"] for s in data["statements"] if not s["savepoint"]] == ["SELECT 1"]
    assert any("logged by the failing test" in text for _, text in data["captured"])
    page = next((report.path / ".e2e-traces").glob("*.html")).read_text()
    for expected in ("<h2>Timeline</h2>", "report_app.Handled", "logged by the failing test"):
        assert expected in page


def test_on_keeps_every_trace_in_the_chosen_directory(report: pytest.Pytester) -> None:
    report.makepyfile(test_traces=TESTS)
    result = report.runpytest_subprocess(
        "--e2e-trace=on", "--e2e-trace-dir=out/traces", timeout=NO_HANG
    )
    result.assert_outcomes(passed=1, failed=1)
    assert len(list((report.path / "out" / "traces").glob("*.json"))) == 2
    assert not (report.path / ".e2e-traces").exists()


def test_off_by_default(report: pytest.Pytester) -> None:
    report.makepyfile(test_traces=TESTS)
    report.runpytest_subprocess(timeout=NO_HANG).assert_outcomes(passed=1, failed=1)
    assert not (report.path / ".e2e-traces").exists()


def test_each_xdist_worker_writes_its_own_directory(report: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    report.makepyfile(test_traces=TESTS)
    result = report.runpytest_subprocess("-n", "2", "--e2e-trace=on", timeout=NO_HANG)
    result.assert_outcomes(passed=1, failed=1)
    workers = {p.parent.name for p in (report.path / ".e2e-traces").glob("*/*.json")}
    assert workers <= {"gw0", "gw1"}
    assert len(list((report.path / ".e2e-traces").glob("*/*.json"))) == 2


def test_bad_trace_mode_is_a_usage_error(report: pytest.Pytester) -> None:
    report.makepyfile("def test_x():\n    pass\n")
    result = report.runpytest_subprocess("--e2e-trace=always", timeout=NO_HANG)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*e2e_trace from command line is 'always'; it must be one of off, retain-on-failure, on.*"]
    )
