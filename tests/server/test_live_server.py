"""The live server: the app on 127.0.0.1 over TCP, in each test's transaction.

Requests from a real TCP client (httpx, curl or another Python process) run in the
transaction of the test that asks for ``live_server``; between tests they get a 503
that says why; only loopback is bound; the server starts once per run and stops
cleanly, also when the run is interrupted.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time

import pytest

# Inner-run timeout: a server that never answers fails the outer test, not the suite.
NO_HANG = 90

# Warnings are errors in the inner runs too: a socket or task left behind at shutdown
# (ResourceWarning, "Task was destroyed but it is pending") fails them.
INI = """
[pytest]
asyncio_default_fixture_loop_scope = session
filterwarnings = error
"""


@pytest.fixture
def live(shop: pytest.Pytester) -> pytest.Pytester:
    """The shop app, with warnings as errors."""
    shop.makeini(INI)
    return shop


def test_a_tcp_client_sees_seeded_rows_and_the_test_sees_its_writes(
    live: pytest.Pytester,
) -> None:
    live.makepyfile(
        """
        import httpx
        from sqlalchemy import select
        from shop import Thing

        async def test_over_tcp(live_server, db_session):
            assert live_server.url == f"http://127.0.0.1:{live_server.port}"
            db_session.add(Thing(name="seeded"))
            await db_session.flush()
            async with httpx.AsyncClient(base_url=live_server.url) as browser:
                assert (await browser.get("/things")).json() == ["seeded"]
                db_session.add(Thing(name="pending"))  # not flushed: flushed for the request
                assert (await browser.get("/things")).json() == ["seeded", "pending"]
                created = await browser.post("/things", params={"name": "from-tcp"})
                assert created.status_code == 201
            names = await db_session.scalars(select(Thing.name).order_by(Thing.id))
            assert list(names) == ["seeded", "pending", "from-tcp"]
        """
    )
    result = live.runpytest_subprocess(timeout=NO_HANG)
    result.assert_outcomes(passed=1)


def test_a_subprocess_sees_seeded_rows(live: pytest.Pytester) -> None:
    live.makepyfile(
        """
        import asyncio, json, shutil, sys
        from shop import Thing

        async def fetch(url):
            if shutil.which("curl"):
                command = ["curl", "-sS", "--max-time", "20", url]
            else:
                code = ("import sys, urllib.request; "
                        "print(urllib.request.urlopen(sys.argv[1]).read().decode())")
                command = [sys.executable, "-c", code, url]
            process = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE)
            out, _ = await process.communicate()  # awaited: the loop keeps serving
            assert process.returncode == 0
            return json.loads(out)

        async def test_curl(live_server, db_session):
            db_session.add(Thing(name="seen-by-curl"))
            await db_session.flush()
            assert await fetch(live_server.url + "/things") == ["seen-by-curl"]
        """
    )
    live.runpytest_subprocess(timeout=NO_HANG).assert_outcomes(passed=1)


def test_writes_through_the_live_server_are_rolled_back_between_tests(
    live: pytest.Pytester,
) -> None:
    live.makepyfile(
        """
        import httpx
        import pytest
        from sqlalchemy import func, select
        from shop import Thing

        @pytest.mark.parametrize("n", range(4))
        async def test_write(live_server, db_session, n):
            async with httpx.AsyncClient(base_url=live_server.url) as browser:
                assert (await browser.get("/things")).json() == []
                assert (await browser.post("/things", params={"name": "same"})).status_code == 201
            assert await db_session.scalar(select(func.count(Thing.id))) == 1
        """
    )
    live.runpytest_subprocess(
        "-p", "random_order", "--random-order", timeout=NO_HANG
    ).assert_outcomes(passed=4)


def test_concurrent_requests_take_turns_in_the_transaction(live: pytest.Pytester) -> None:
    live.makepyfile(
        """
        import asyncio
        import httpx
        from sqlalchemy import func, select
        from shop import Thing

        async def test_gathered(live_server, db_session):
            async with httpx.AsyncClient(base_url=live_server.url) as browser:
                posts = [browser.post("/things", params={"name": f"t{i}"}) for i in range(8)]
                answers = await asyncio.gather(*posts, *(browser.get("/things") for _ in range(4)))
            assert [r.status_code for r in answers[:8]] == [201] * 8
            assert all(r.status_code == 200 for r in answers[8:])
            assert await db_session.scalar(select(func.count(Thing.id))) == 8
        """
    )
    live.runpytest_subprocess(timeout=NO_HANG).assert_outcomes(passed=1)


def test_requests_outside_a_live_server_test_get_503_with_the_reason(
    live: pytest.Pytester,
) -> None:
    live.makepyfile(
        """
        import httpx
        import pytest_asyncio

        URL = {}

        @pytest_asyncio.fixture
        async def after_live_server_ended():  # torn down after live_server's teardown
            yield
            async with httpx.AsyncClient() as browser:
                response = await browser.get(URL["url"] + "/things")
            assert response.status_code == 503, response.text
            print("AFTER-THE-TEST:", response.json()["detail"])

        async def test_1_remember(after_live_server_ended, live_server):
            URL["url"] = live_server.url

        async def test_2_not_asking(db_session):
            async with httpx.AsyncClient() as browser:
                response = await browser.get(URL["url"] + "/things")
            assert response.status_code == 503
            assert "no test that asks for live_server" in response.json()["detail"]
        """
    )
    result = live.runpytest_subprocess("-s", timeout=NO_HANG)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        ["*AFTER-THE-TEST: *GET /things reached the live server while no test*Fix: *"]
    )


def test_only_loopback_is_bound(live: pytest.Pytester) -> None:
    live.makepyfile(
        """
        def listening(port):
            found = []
            for table in ("/proc/net/tcp", "/proc/net/tcp6"):
                try:
                    with open(table) as f:
                        lines = f.read().splitlines()[1:]
                except OSError:
                    continue
                for line in lines:
                    fields = line.split()
                    address, state = fields[1], fields[3]
                    host, _, hex_port = address.partition(":")
                    if state == "0A" and int(hex_port, 16) == port:
                        found.append(host)
            return found

        def test_loopback(live_server):
            assert live_server.host == "127.0.0.1"
            assert listening(live_server.port) == ["0100007F"]  # 127.0.0.1, nothing else
        """
    )
    if not os.path.exists("/proc/net/tcp"):
        pytest.skip("reads listening sockets from /proc/net/tcp (Linux)")
    live.runpytest_subprocess(timeout=NO_HANG).assert_outcomes(passed=1)


def test_failure_report_shows_live_server_requests(live: pytest.Pytester) -> None:
    live.makepyfile(
        """
        import httpx

        async def test_fails(live_server):
            async with httpx.AsyncClient(base_url=live_server.url) as browser:
                response = await browser.get("/boom")
            assert response.status_code == 200
        """
    )
    result = live.runpytest_subprocess(timeout=NO_HANG)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*fastapi-e2e: requests, server exceptions and SQL*",
            "*GET http://127.0.0.1:*/boom*500*",
            "*ValueError: kaboom from the server*",
        ]
    )


def test_server_starts_once_per_run_and_says_how_long_it_took(live: pytest.Pytester) -> None:
    live.makepyfile(
        """
        import pytest

        PORTS = set()

        @pytest.mark.parametrize("n", range(3))
        def test_port(live_server, n):
            PORTS.add(live_server.port)
            assert len(PORTS) == 1
        """
    )
    result = live.runpytest_subprocess(timeout=NO_HANG)
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["fastapi-e2e: *started in * s (*live server 0.* s)*"])


def test_sync_tests_get_answers_and_keep_the_sync_client(live: pytest.Pytester) -> None:
    live.makepyfile(
        """
        import httpx
        import pytest_asyncio
        import shop

        @pytest_asyncio.fixture
        async def audited():  # async, set up after live_server: gets the loop back
            await shop.write_audit("seeded")
            yield
            await shop.write_audit("teardown")

        def test_sync(live_server, audited, client):
            created = httpx.post(live_server.url + "/things", params={"name": "sync"}, timeout=20)
            assert created.status_code == 201
            assert httpx.get(live_server.url + "/things", timeout=20).json() == ["sync"]
            assert client.get("/things").json() == ["sync"]  # the harness's sync client

        def test_then_empty(client, live_server):
            assert httpx.get(live_server.url + "/things", timeout=20).json() == []
        """
    )
    live.runpytest_subprocess(
        "-p", "random_order", "--random-order", timeout=NO_HANG
    ).assert_outcomes(passed=2)


def test_an_interrupted_run_stops_the_server_and_frees_the_port(live: pytest.Pytester) -> None:
    port_file = live.path / "port"
    live.makepyfile(
        f"""
        import asyncio, pathlib

        async def test_waits(live_server):
            pathlib.Path({str(port_file)!r}).write_text(str(live_server.port))
            await asyncio.sleep(60)
        """
    )
    with open(live.path / "out.txt", "w") as stdout, open(live.path / "err.txt", "w") as stderr:
        process = live.popen(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"], stdout=stdout, stderr=stderr
        )
        try:
            deadline = time.monotonic() + NO_HANG
            while not port_file.exists() or not port_file.read_text():
                assert process.poll() is None, (live.path / "out.txt").read_text()
                assert time.monotonic() < deadline, "the inner test never started"
                time.sleep(0.05)
            port = int(port_file.read_text())
            process.send_signal(signal.SIGINT)
            process.wait(NO_HANG)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    out = (live.path / "out.txt").read_text()
    assert "KeyboardInterrupt" in out, out
    assert "Warning" not in out + (live.path / "err.txt").read_text(), out
    with socket.socket() as probe:  # nothing listens on it any more
        assert probe.connect_ex(("127.0.0.1", port)) != 0
