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
