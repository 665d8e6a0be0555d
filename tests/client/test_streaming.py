"""client.stream() on a streamed response: status and headers when the app starts it,
chunks as the app sends them, leaving early stops the app, and the read timeout
applies between chunks. The app is tests/examples/notifications_app.py."""

from __future__ import annotations

import pytest

from tests.conftest import CONFTEST

NO_HANG = 60

# Reads the feed until it has two events, then leaves: the app's feed never ends.
READ_TWO_EVENTS = """
import asyncio
import httpx
import pytest
from sqlalchemy import select
import notifications_app
from notifications_app import Notification


async def seed(db_session, *texts):
    db_session.add_all(Notification(user="ann", text=text) for text in texts)


async def read_events(client, url, count):
    events = []
    async with client.stream("GET", url) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                events.append(line)
                if len(events) == count:
                    break
    return events
"""


@pytest.fixture
def notifications(shop: pytest.Pytester) -> pytest.Pytester:
    shop.copy_example("notifications_app.py")
    shop.makeconftest(
        "import notifications_app\n"
        + CONFTEST.format(extra="").replace('"shop:create_app"', '"notifications_app:create_app"')
    )
    return shop


def test_endless_feed_read_in_part_then_left_stops_the_app(notifications: pytest.Pytester) -> None:
    notifications.makepyfile(
        READ_TWO_EVENTS
        + """
async def test_two_events_then_leave(client, db_session):
    await seed(db_session, "welcome", "your order shipped", "third")

    # A timeout on the whole scenario: without streaming it would hang.
    events = await asyncio.wait_for(
        read_events(client, "/users/ann/events?keepalive=0.05", 2), timeout=10
    )

    assert [e.split('"text": ')[1] for e in events] == ['"welcome"}', '"your order shipped"}']
    # Leaving the `async with` waited for the app's generator: its finally ran, and
    # its session rolled back to its savepoint (the deliveries were never committed).
    assert notifications_app.FEEDS_CLOSED == ["ann"]
    delivered = await db_session.scalars(select(Notification.delivered).order_by(Notification.id))
    assert list(delivered) == [False, False, False]
    # Nothing holds the shared connection: the next request runs at once.
    assert (await client.get("/things", timeout=2)).status_code == 200
"""
    )
    notifications.runpytest_subprocess(timeout=NO_HANG).assert_outcomes(passed=1)


def test_feed_that_ends_is_reported_as_ended_by_the_app(notifications: pytest.Pytester) -> None:
    notifications.makepyfile(
        READ_TWO_EVENTS
        + """
async def test_finite_feed(client, db_session):
    await seed(db_session, "welcome")
    response = await client.get("/users/ann/events?keepalive=0.01&limit=2")
    assert response.text.count(": keep-alive") == 2
    assert notifications_app.FEEDS_CLOSED == ["ann"]
    assert list(await db_session.scalars(select(Notification.delivered))) == [True]
    assert False, "show the report"
"""
    )
    result = notifications.runpytest_subprocess(timeout=NO_HANG)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "    response stream (text/event-stream; charset=utf-8, 3 chunk(s), * bytes):",
            "      ended by the app (it sent the last chunk)",
            "      #2 +* ms, 14 bytes: : keep-alive\\n\\n",
        ]
    )


def test_read_timeout_applies_between_chunks(notifications: pytest.Pytester) -> None:
    notifications.makepyfile(
        READ_TWO_EVENTS
        + """
async def test_gap(client, db_session):
    await seed(db_session, "welcome")
    expected = (
        "The response stream of GET http://testserver/users/ann/events[?]keepalive=30 "
        "sent no chunk for 0.5 s .* after 1 chunk[(]s[)]"
    )
    with pytest.raises(httpx.ReadTimeout, match=expected):
        async with client.stream("GET", "/users/ann/events?keepalive=30", timeout=0.5) as r:
            async for line in r.aiter_lines():
                pass
    assert notifications_app.FEEDS_CLOSED == ["ann"]  # told it was left, cleanly
    # SQLAlchemy 2.0.30 (the floor) does not finish closing a session that anyio's
    # cancel scope (Starlette's stream) cancels again during the close; the garbage
    # collector rolls it back later, under the next request's savepoint.
    import sqlalchemy
    if tuple(int(p) for p in sqlalchemy.__version__.split(".")[:3]) > (2, 0, 30):
        assert (await client.get("/things", timeout=2)).status_code == 200


async def test_slow_chunks_each_within_the_timeout(client, db_session):
    await seed(db_session, "welcome")
    url = "/users/ann/events?keepalive=0.3&limit=4"
    response = await client.get(url, timeout=0.6)  # 1.2 s in all, never 0.6 s between chunks
    assert response.text.count(": keep-alive") == 4


async def test_first_chunk_never_sent(app, client):
    @app.get("/never")
    async def never():
        await asyncio.Event().wait()

    with pytest.raises(httpx.ReadTimeout, match="did not answer GET .*/never within 0.3 s"):
        async with client.stream("GET", "/never", timeout=0.3):
            pass
"""
    )
    notifications.runpytest_subprocess(timeout=NO_HANG).assert_outcomes(passed=3)


def test_route_raising_mid_stream_breaks_it_and_reports_the_traceback(
    notifications: pytest.Pytester,
) -> None:
    notifications.makepyfile(
        READ_TWO_EVENTS
        + """
async def test_broken_feed(client, db_session):
    await seed(db_session, "welcome", "second")
    lines = []
    broke = "raised RuntimeError: the feed of ann broke"
    with pytest.raises(httpx.RemoteProtocolError, match=broke):
        async with client.stream("GET", "/users/ann/events?fail=true") as response:
            async for line in response.aiter_lines():
                lines.append(line)
    assert lines[0] == "id: 1"
    assert notifications_app.FEEDS_CLOSED == ["ann"]
    assert False, "show the report"
"""
    )
    result = notifications.runpytest_subprocess(timeout=NO_HANG)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "[[]1] GET http://testserver/users/ann/events?fail=true -> 200 OK in * ms",
            "    response stream (text/event-stream; charset=utf-8, 1 chunk(s), * bytes):",
            "      ended by the app raising an exception (below) before the last chunk",
            '      #1 +* ms, * bytes: id: 1\\nevent: notification\\ndata: {"id": 1, *',
            "    server exception (unhandled: it propagated out of the app):",
            "*RuntimeError: the feed of ann broke",
            "*notifications_app.py:*",
        ]
    )


def test_report_shows_the_chunks_and_that_the_client_ended_the_stream(
    notifications: pytest.Pytester,
) -> None:
    notifications.makepyfile(
        READ_TWO_EVENTS
        + """
async def test_left(client, db_session):
    await seed(db_session, "welcome", "token: tok-QX81", "third")
    await asyncio.wait_for(read_events(client, "/users/ann/events?keepalive=0.05", 2), 10)
    assert False, "show the report"
"""
    )
    result = notifications.runpytest_subprocess(timeout=NO_HANG)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "[[]1] GET http://testserver/users/ann/events?keepalive=0.05 -> 200 OK in * ms",
            "    response stream (text/event-stream; charset=utf-8, * chunk(s), * bytes):",
            "      ended by the client: it closed the stream before the end, *",
            "      #1 +* ms, * bytes: id: 1\\nevent: notification\\ndata: "
            '{"id": 1, "text": "welcome"}*',
            '      #2 +* ms, * bytes: id: 2\\nevent: notification\\ndata: {"id": 2, *',
        ]
    )
