"""Commits mode (``@pytest.mark.e2e_commits``): a database of the test's own, real commits."""

from __future__ import annotations

import json
import re
import signal

import pytest

from tests.conftest import Admin

COMMITS_CONFTEST = """
import pytest
from fastapi_e2e import E2EConfig

@pytest.fixture(scope="session")
def e2e_config():
    return E2EConfig(app="commits_app:app", metadata="commits_app:Base.metadata")
"""


@pytest.fixture
def commits_app(
    pytester: pytest.Pytester, server_url: str, monkeypatch: pytest.MonkeyPatch
) -> pytest.Pytester:
    """The commits app on the outer cluster, read from DATABASE_URL as real apps do."""
    pytester.copy_example("commits_app.py")
    pytester.makeconftest(COMMITS_CONFTEST)
    monkeypatch.setenv("E2E_DATABASE_URL", server_url)
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://app:secret@db.invalid/app")
    return pytester


def _summary(result: pytest.RunResult) -> str:
    return "\n".join(line for line in result.outlines if "commits mode:" in line)


def _waited(result: pytest.RunResult) -> list[int]:
    return [int(n) for n in re.findall(r"(\d+) waited for one after the first", _summary(result))]


ISOLATION = """
import pytest
from sqlalchemy import text

pytestmark = pytest.mark.e2e_commits

@pytest.mark.parametrize("n", range({count}))
async def test_sees_only_its_own_rows(client, db_session, n):
    assert await db_session.scalar(text("SELECT count(*) FROM jobs")) == 0
    for i in range(3):
        assert (await client.post("/jobs", params={{"name": f"{{n}}-{{i}}"}})).status_code == 201
    assert (await client.get("/jobs/count")).json() == 3
"""


def test_commits_tests_are_isolated_in_random_order(commits_app: pytest.Pytester) -> None:
    commits_app.makepyfile(test_iso=ISOLATION.format(count=6))
    result = commits_app.runpytest_subprocess("-p", "random_order", "--random-order")
    result.assert_outcomes(passed=6)
    assert "6 test(s) on databases of their own" in _summary(result)


def test_commits_tests_are_isolated_under_xdist(commits_app: pytest.Pytester, admin: Admin) -> None:
    commits_app.makepyfile(test_iso=ISOLATION.format(count=6))
    result = commits_app.runpytest_subprocess("-n", "2", "-p", "xdist")
    result.assert_outcomes(passed=6)
    summaries = _summary(result)
    assert summaries.count("commits mode:") == 2, summaries  # a pool per worker
    assert admin.e2e_databases() == []


def test_both_modes_in_one_module(commits_app: pytest.Pytester) -> None:
    commits_app.makepyfile(
        """
        import pytest
        from sqlalchemy import text

        async def test_rollback_first(client, db_session):
            await client.post("/jobs", params={"name": "rolled back"})
            assert await db_session.scalar(text("SELECT count(*) FROM jobs")) == 1

        @pytest.mark.e2e_commits
        async def test_commits(client, db_session, e2e_database_url):
            assert (await client.post("/jobs", params={"name": "kept"})).status_code == 201
            assert await db_session.scalar(text("SELECT count(*) FROM jobs")) == 1
            assert (await client.get("/database")).json() != e2e_database_url.database

        class TestMarkedClass:
            pytestmark = pytest.mark.e2e_commits

            async def test_commits_in_class(self, client, db_session):
                assert (await client.get("/jobs/count")).json() == 0
                await client.post("/jobs", params={"name": "kept too"})
                assert await db_session.scalar(text("SELECT count(*) FROM jobs")) == 1

        async def test_rollback_after(client, db_session, e2e_database_url):
            # Back in the run's database, which no commit reached.
            assert (await client.get("/database")).json() == e2e_database_url.database
            assert await db_session.scalar(text("SELECT count(*) FROM jobs")) == 0
        """
    )
    result = commits_app.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=4)
    assert "2 test(s) on databases of their own" in _summary(result)


def test_a_run_without_the_marker_makes_no_pool(commits_app: pytest.Pytester) -> None:
    commits_app.makepyfile("async def test_plain(client):\n    await client.get('/jobs/count')\n")
    result = commits_app.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    assert _summary(result) == ""


def test_the_pool_refills_in_the_background_once_warm(commits_app: pytest.Pytester) -> None:
    commits_app.makepyfile(
        """
        import asyncio, pytest

        @pytest.mark.e2e_commits
        @pytest.mark.parametrize("n", range(4))
        async def test_slow(client, n):
            await client.post("/jobs", params={"name": "x"})
            await asyncio.sleep(1.0)  # time enough to replace the database used before
        """
    )
    result = commits_app.runpytest_subprocess()
    result.assert_outcomes(passed=4)
    assert _waited(result) == [0], _summary(result)


def test_a_burst_longer_than_the_pool_waits_then_proceeds(commits_app: pytest.Pytester) -> None:
    commits_app.makepyfile(
        """
        import pytest

        @pytest.mark.e2e_commits
        @pytest.mark.parametrize("n", range(10))
        async def test_fast(db_session, n):
            pass
        """
    )
    result = commits_app.runpytest_subprocess()
    result.assert_outcomes(passed=10)
    assert _waited(result)[0] > 0, _summary(result)
    assert re.search(r"pool size [2-3]", _summary(result)), _summary(result)


KEEP = """
import pytest

@pytest.mark.e2e_commits
async def test_fails(client):
    await client.post("/jobs", params={"name": "evidence"})
    assert False, "look at the database"

@pytest.mark.e2e_commits
async def test_passes(client):
    await client.post("/jobs", params={"name": "fine"})
"""


def test_keep_failed_keeps_exactly_the_failed_database_until_the_next_run(
    commits_app: pytest.Pytester, admin: Admin, server_url: str
) -> None:
    commits_app.makepyfile(test_keep=KEEP)
    result = commits_app.runpytest_subprocess("--e2e-keep-failed", "-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*kept database*",
            "*The database of this commits-mode test was kept (--e2e-keep-failed): e2e_*",
            "*URL:  postgresql+asyncpg://postgres:***@127.0.0.1:*/e2e_*",
            "*psql: psql 'postgresql://postgres@127.0.0.1:*/e2e_*'*",
            "*next run's start-up drops it*",
        ]
    )
    password = server_url.split(":")[2].split("@")[0]
    assert password not in result.stdout.str()
    kept = admin.e2e_databases()
    assert len(kept) == 1, kept
    assert admin.fetch("SELECT name FROM jobs", database=kept[0])[0]["name"] == "evidence"

    again = commits_app.runpytest_subprocess("-p", "no:randomly", "-k", "passes")
    again.assert_outcomes(passed=1)
    again.stdout.fnmatch_lines(["*dropped 1 database(s) kept by earlier runs*"])
    assert admin.e2e_databases() == []


def test_keep_failed_given_again_keeps_the_earlier_runs_databases(
    commits_app: pytest.Pytester, admin: Admin
) -> None:
    commits_app.makepyfile(test_keep=KEEP)
    commits_app.runpytest_subprocess("--e2e-keep-failed").assert_outcomes(passed=1, failed=1)
    commits_app.runpytest_subprocess("--e2e-keep-failed").assert_outcomes(passed=1, failed=1)
    assert len(admin.e2e_databases()) == 2
    commits_app.runpytest_subprocess("-k", "passes").assert_outcomes(passed=1)
    assert admin.e2e_databases() == []


def test_keep_failed_records_the_database_in_the_trace(
    commits_app: pytest.Pytester, admin: Admin
) -> None:
    commits_app.makepyfile(test_keep=KEEP)
    commits_app.runpytest_subprocess(
        "--e2e-keep-failed", "--e2e-trace", "retain-on-failure"
    ).assert_outcomes(passed=1, failed=1)
    (trace,) = (commits_app.path / ".e2e-traces").glob("*.json")
    database = json.loads(trace.read_text())["database"]
    assert database["mode"] == "commits"
    assert database["kept"] is True
    assert admin.e2e_databases() == [database["name"]]
    admin.execute(f'DROP DATABASE "{database["name"]}"')


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_mid_run_leaves_no_pool_database(
    commits_app: pytest.Pytester, admin: Admin, signum: int
) -> None:
    commits_app.makepyfile(
        f"""
        import asyncio, os, pytest

        @pytest.mark.e2e_commits
        @pytest.mark.parametrize("n", range(3))
        async def test_commits(client, n):
            await client.post("/jobs", params={{"name": "x"}})
            if n == 2:
                os.kill(os.getpid(), {int(signum)})
                await asyncio.sleep(5)
        """
    )
    result = commits_app.runpytest_subprocess("-p", "no:randomly", timeout=60)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert admin.e2e_databases() == []


def test_the_apps_pooled_connections_follow_the_database(commits_app: pytest.Pytester) -> None:
    commits_app.makepyfile(
        """
        import pytest
        from commits_app import engine
        from sqlalchemy import text

        seen = []

        @pytest.mark.e2e_commits
        @pytest.mark.parametrize("n", range(3))
        async def test_each_on_its_own(client, e2e_test_database_url, n):
            # The app's pool held connections to the previous test's database, which
            # was dropped since: none of them may be handed out.
            assert (await client.get("/database")).json() == e2e_test_database_url.database
            async with engine.connect() as conn:
                assert await conn.scalar(text("SELECT current_database()")) == (
                    e2e_test_database_url.database
                )
            seen.append(e2e_test_database_url.database)
            assert len(set(seen)) == len(seen)
        """
    )
    result = commits_app.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=3)


def test_a_long_burst_keeps_few_used_databases_waiting_for_their_drop(
    commits_app: pytest.Pytester,
) -> None:
    # Tests faster than a clone keep the pool making databases; it drops used ones
    # only when idle, unless too many wait (the embedded cluster lives in memory).
    commits_app.makepyfile(
        """
        import pytest
        from sqlalchemy import text
        from fastapi_e2e.database.pool import MAKERS, MAX_READY, MAX_UNDROPPED

        COUNT = text("SELECT count(*) FROM pg_database WHERE datname LIKE :pool")

        @pytest.mark.e2e_commits
        @pytest.mark.parametrize("n", range(80))
        async def test_fast(request, e2e_test_database_url, n):
            if n % 20 < 19:
                return  # faster than the server clones
            db_session = request.getfixturevalue("db_session")
            pool = e2e_test_database_url.database.rsplit("_c", 1)[0] + "\\\\_c%"
            existing = await db_session.scalar(COUNT, {"pool": pool})
            # Ready ones, being made, used ones not dropped yet (a make of two may end
            # between two drops), and this test's.
            assert existing <= MAX_READY + 2 * MAKERS + MAX_UNDROPPED + 1
        """
    )
    result = commits_app.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=80)
    assert _waited(result)[0] > 10, _summary(result)  # a burst: the pool fell behind


def test_the_apps_connections_are_opened_before_the_test_once_warm(
    commits_app: pytest.Pytester,
) -> None:
    commits_app.makepyfile(
        """
        import asyncio, time, pytest

        @pytest.mark.e2e_commits
        @pytest.mark.parametrize("n", range(4))
        async def test_slow(client, n):
            started = time.time()
            served = (await client.get("/connection")).json()
            if n:  # the first test shows the pool what its tests open
                assert served["started"] < started, "connected during the test"
            await asyncio.sleep(0.5)  # time enough to ready the next database
        """
    )
    result = commits_app.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*connections for them: 3 opened ahead, 1 on demand*"])


UNREADABLE_VIEW = """
import pytest
from fastapi_e2e import E2EConfig

# Planning a read of this view raises: the warm-up (LIMIT 0 reads) cannot read it.
SETUP = (
    "CREATE FUNCTION boom() RETURNS int IMMUTABLE LANGUAGE plpgsql "
    "AS $$ BEGIN RAISE 'boom'; END $$; "
    "CREATE VIEW boom_view AS SELECT 1 AS x WHERE boom() = 1;"
)

@pytest.fixture(scope="session")
def e2e_config():
    return E2EConfig(
        app="commits_app:app", metadata="commits_app:Base.metadata", setup_sql=SETUP
    )
"""


def test_a_schema_the_warm_up_cannot_read_still_gets_connections_ahead(
    commits_app: pytest.Pytester,
) -> None:
    commits_app.makeconftest(UNREADABLE_VIEW)
    commits_app.makepyfile(
        """
        import asyncio, pytest

        @pytest.mark.e2e_commits
        @pytest.mark.parametrize("n", range(4))
        async def test_slow(client, n):
            assert (await client.get("/jobs/count")).json() == 0
            await asyncio.sleep(0.3)
        """
    )
    result = commits_app.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(
        ["*connections for them: 3 opened ahead, 1 on demand, warm-up off: boom*"]
    )


def test_a_finished_tests_connections_are_closed_before_its_database_is_dropped(
    commits_app: pytest.Pytester,
) -> None:
    # Fast tests keep the pool busy making databases, so it drops used ones late; their
    # connections must not wait for the drop, or the server runs out of them.
    commits_app.makepyfile(
        """
        import pytest
        from sqlalchemy import text

        STILL_CONNECTED = text(
            "SELECT datname, count(*) FROM pg_stat_activity "
            "WHERE datname = ANY(:names) AND backend_type = 'client backend' GROUP BY datname"
        )
        used = []

        @pytest.mark.e2e_commits
        @pytest.mark.parametrize("n", range(30))
        async def test_fast(client, db_session, e2e_test_database_url, n):
            assert (await client.get("/jobs/count")).json() == 0
            # The last two tests' connections may still be closing.
            left = (await db_session.execute(STILL_CONNECTED, {"names": used[:-2]})).all()
            assert left == []
            used.append(e2e_test_database_url.database)
        """
    )
    result = commits_app.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=30)


# --- what needs a real commit now works ---------------------------------------------


def test_listen_notify_reaches_a_listener_on_another_connection(
    commits_app: pytest.Pytester,
) -> None:
    commits_app.makepyfile(
        """
        import asyncio, asyncpg, pytest

        @pytest.mark.e2e_commits
        async def test_notify(client, e2e_test_database_url):
            url = e2e_test_database_url.set(drivername="postgresql")
            listener = await asyncpg.connect(url.render_as_string(hide_password=False))
            received = asyncio.Queue()
            await listener.add_listener("events", lambda *args: received.put_nowait(args[3]))
            try:
                response = await client.post("/notify", params={"message": "hello"})
                assert response.status_code == 200
                assert await asyncio.wait_for(received.get(), 5) == "hello"
            finally:
                await listener.close()
        """
    )
    commits_app.runpytest_subprocess().assert_outcomes(passed=1)


def test_a_second_connection_sees_what_a_request_committed(commits_app: pytest.Pytester) -> None:
    commits_app.makepyfile(
        """
        import pytest
        from sqlalchemy import text
        from sqlalchemy.ext.asyncio import create_async_engine

        @pytest.mark.e2e_commits
        async def test_committed(client, e2e_database_url):
            await client.post("/jobs", params={"name": "committed"})
            # The test's own engine, made from e2e_database_url: wired to this test's
            # database during a commits-mode test, on connections of its own.
            engine = create_async_engine(e2e_database_url)
            try:
                async with engine.connect() as conn:
                    names = (await conn.scalars(text("SELECT name FROM jobs"))).all()
            finally:
                await engine.dispose()
            assert names == ["committed"]
        """
    )
    commits_app.runpytest_subprocess().assert_outcomes(passed=1)


def test_skip_locked_gives_two_concurrent_requests_two_rows(commits_app: pytest.Pytester) -> None:
    commits_app.makepyfile(
        """
        import asyncio, pytest

        @pytest.mark.e2e_commits
        async def test_claims(client):
            for name in ("a", "b"):
                await client.post("/jobs", params={"name": name})
            first, second = await asyncio.gather(client.post("/claim"), client.post("/claim"))
            assert sorted([first.json(), second.json()]) == [1, 2]
        """
    )
    commits_app.runpytest_subprocess().assert_outcomes(passed=1)


def test_session_level_advisory_locks_are_held_by_the_apps_connection(
    commits_app: pytest.Pytester,
) -> None:
    commits_app.makepyfile(
        """
        import pytest
        from sqlalchemy import text

        @pytest.mark.e2e_commits
        async def test_lock(client, db_connection):
            assert (await client.post("/lock")).json() is True
            # Another session: the app's pooled connection still holds it.
            assert await db_connection.scalar(text("SELECT pg_try_advisory_lock(42)")) is False
        """
    )
    commits_app.runpytest_subprocess().assert_outcomes(passed=1)


def test_a_subprocess_reads_the_committed_row(commits_app: pytest.Pytester) -> None:
    commits_app.makepyfile(
        """
        import subprocess, sys, pytest

        READ = '''
        import asyncio, sys, asyncpg
        async def main():
            conn = await asyncpg.connect(sys.argv[1])
            print(await conn.fetchval("SELECT name FROM jobs"))
            await conn.close()
        asyncio.run(main())
        '''

        @pytest.mark.e2e_commits
        def test_subprocess(client, e2e_test_database_url):
            client.post("/jobs", params={"name": "from the request"})
            dsn = e2e_test_database_url.set(drivername="postgresql")
            out = subprocess.run(
                [sys.executable, "-c", READ.replace("\\n        ", "\\n"),
                 dsn.render_as_string(hide_password=False)],
                capture_output=True, text=True, timeout=30, check=True,
            ).stdout
            assert out.strip() == "from the request"
        """
    )
    commits_app.runpytest_subprocess().assert_outcomes(passed=1)


def test_a_test_without_the_marker_still_cannot_see_the_commit(
    commits_app: pytest.Pytester,
) -> None:
    # The contrast: without the marker, a second connection sees nothing.
    commits_app.makepyfile(
        """
        from sqlalchemy import text
        from sqlalchemy.ext.asyncio import create_async_engine

        async def test_rolled_back(client, e2e_database_url):
            await client.post("/jobs", params={"name": "uncommitted"})
            engine = create_async_engine(e2e_database_url)
            async with engine.connect() as conn:
                assert await conn.scalar(text("SELECT count(*) FROM jobs")) == 0
            await engine.dispose()
        """
    )
    commits_app.runpytest_subprocess().assert_outcomes(passed=1)


def test_commits_mode_refuses_what_it_cannot_honour(commits_app: pytest.Pytester) -> None:
    commits_app.makepyfile(
        test_seeded="""
        import pytest
        from fastapi_e2e import seed

        @seed(scope="module")
        async def jobs(client):
            await client.post("/jobs", params={"name": "seeded"})

        @pytest.mark.e2e_commits
        async def test_in_a_seed_group(jobs, client):
            pass
        """,
        test_counted="""
        import pytest

        @pytest.mark.e2e_commits
        async def test_counts_queries(client, e2e_queries):
            pass
        """,
    )
    result = commits_app.runpytest_subprocess(timeout=120)
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        [
            "*e2e_queries counts the statements on the test's shared connection*",
            "*marked e2e_commits but runs inside a @seed group*Fix: move commits-mode tests*",
        ]
    )


def test_commits_mode_with_an_app_role_is_refused(commits_app: pytest.Pytester) -> None:
    commits_app.makepyfile(
        """
        import pytest

        @pytest.mark.e2e_commits
        async def test_marked(client):
            pass
        """
    )
    result = commits_app.runpytest_subprocess("--e2e-app-role", "auto", timeout=120)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*run's app role is '*_app' (--e2e-app-role)*"])


def test_commits_mode_points_the_environment_and_factories_at_its_database(
    commits_app: pytest.Pytester,
) -> None:
    commits_app.makepyfile(
        """
        import os

        import pytest
        from sqlalchemy import text
        from fastapi_e2e import current_session

        @pytest.mark.e2e_commits
        async def test_own(client, db_session, e2e_test_database_url):
            assert os.environ["DATABASE_URL"].endswith("/" + e2e_test_database_url.database)
            assert current_session() is db_session
            name = await current_session().scalar(text("SELECT current_database()"))
            assert name == e2e_test_database_url.database

        async def test_rollback_after(client, e2e_database_url):
            assert os.environ["DATABASE_URL"].endswith("/" + e2e_database_url.database)
        """
    )
    # DATABASE_URL set by database_url_env, as the commits app reads it.
    commits_app.makeconftest(
        COMMITS_CONFTEST.replace(
            'metadata="commits_app:Base.metadata"',
            'metadata="commits_app:Base.metadata", database_url_env="DATABASE_URL"',
        )
    )
    result = commits_app.runpytest_subprocess("-p", "no:randomly", timeout=120)
    result.assert_outcomes(passed=2)


def test_a_task_a_commits_request_left_running_cannot_write_later(
    commits_app: pytest.Pytester,
) -> None:
    commits_app.makepyfile(
        """
        import asyncio

        import pytest
        from fastapi import FastAPI
        from sqlalchemy import func, select

        import commits_app

        LEFT_OVER: list[asyncio.Task] = []

        @pytest.fixture(autouse=True, scope="module")
        def late_route():
            async def audit():
                await asyncio.sleep(0.2)
                async with commits_app.SessionLocal() as session:
                    session.add(commits_app.Job(name="late"))
                    await session.commit()

            @commits_app.app.post("/fire")
            async def fire():
                LEFT_OVER.append(asyncio.get_running_loop().create_task(audit()))

            yield

        @pytest.mark.e2e_commits
        async def test_fires(client):
            assert (await client.post("/fire")).status_code == 200

        async def test_after(client, db_session):
            with pytest.raises(Exception, match="started and left running"):
                await asyncio.gather(*LEFT_OVER)
            count = await db_session.scalar(select(func.count()).select_from(commits_app.Job))
            assert count == 0
        """
    )
    result = commits_app.runpytest_subprocess("-p", "no:randomly", timeout=120)
    # Refused where it ran, and the test it ran in is told at its end (even had the
    # task swallowed the error).
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        ["*ERROR at teardown of test_after*", "Refused a session opened at *in audit by a task*"]
    )
