"""Behaviours: e2e_queries asserts how many statements a block ran and points at N+1s."""

from __future__ import annotations

import pytest

from tests.diagnosis.conftest import NO_HANG


def test_exact_and_maximum_counts_pass(report: pytest.Pytester) -> None:
    report.makepyfile(
        """
        async def test_counts(client, e2e_queries):
            with e2e_queries.exactly(1):
                await client.get("/things")
            with e2e_queries.at_most(5) as queries:
                await client.post("/things", params={"name": "a"})
            assert any(sql.startswith("INSERT INTO things") for sql in queries.sql)
            assert not any(sql.startswith(("SAVEPOINT", "RELEASE")) for sql in queries.sql)
        """
    )
    report.runpytest_subprocess(timeout=NO_HANG).assert_outcomes(passed=1)


def test_failed_count_lists_the_sql_and_flags_an_n_plus_one(
    report: pytest.Pytester,
) -> None:
    report.makepyfile(
        """
        async def test_n_plus_one(client, db_session, e2e_queries):
            for name in ("a", "b", "c"):
                await client.post("/things", params={"name": name})
            with e2e_queries.at_most(2):
                await client.get("/report/n-plus-one")
        """
    )
    result = report.runpytest_subprocess(timeout=NO_HANG)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E * Expected at most 2 SQL statement(s) on the test's connection, but 4 ran "
            "(SAVEPOINT, RELEASE and ROLLBACK TO bookkeeping not counted):",
            "E *   1. [[]GET /report/n-plus-one] SELECT things.id FROM things ORDER BY things.id",
            "E *   2. [[]GET /report/n-plus-one] SELECT things.name FROM things WHERE *",
            "E *Repeated: 3 times in GET /report/n-plus-one: SELECT things.name FROM things WHERE*",
            "E *an N+1 pattern?*",
        ]
    )


def test_exact_count_fails_when_fewer_ran(report: pytest.Pytester) -> None:
    report.makepyfile(
        """
        async def test_fewer(client, e2e_queries):
            with e2e_queries.exactly(3):
                await client.get("/things")
        """
    )
    result = report.runpytest_subprocess(timeout=NO_HANG)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["E * Expected exactly 3 SQL statement(s)*but 1 ran*"])
