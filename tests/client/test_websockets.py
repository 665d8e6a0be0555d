"""WebSockets through the harness's client with httpx-ws: in-process, on the test's loop
and in its transaction. The app is tests/examples/chat_app.py."""

from __future__ import annotations

import pytest

from tests.conftest import CONFTEST

NO_HANG = 60

HEADER = """
import asyncio
import pytest
from httpx_ws import WebSocketDisconnect, WebSocketUpgradeError, aconnect_ws
from sqlalchemy import func, select
import chat_app
from chat_app import ChatMessage, Member
"""


@pytest.fixture
def chat(shop: pytest.Pytester) -> pytest.Pytester:
    shop.copy_example("chat_app.py")
    shop.makeconftest(
        "import chat_app\n"
        + CONFTEST.format(extra="").replace('"shop:create_app"', '"chat_app:create_app"')
    )
    return shop


def test_echo_sends_and_receives_text_bytes_and_json(chat: pytest.Pytester) -> None:
    chat.makepyfile(
        HEADER
        + """
async def test_echo(client):
    async with aconnect_ws("/echo", client) as ws:
        await ws.send_text("hello")
        assert await ws.receive_text(timeout=5) == "hello"
        await ws.send_bytes(b"\\x00\\xff")
        assert await ws.receive_bytes(timeout=5) == b"\\x00\\xff"
        await ws.send_json({"n": 1})
        assert await ws.receive_json(timeout=5) == {"n": 1}
"""
    )
    chat.runpytest_subprocess(timeout=NO_HANG).assert_outcomes(passed=1)


def test_route_reads_seeded_rows_per_message_and_its_writes_roll_back(
    chat: pytest.Pytester,
) -> None:
    chat.makepyfile(
        HEADER
        + """
async def test_1_chat(client, db_session):
    db_session.add_all([Member(room="lobby", name="ann"), Member(room="lobby", name="bob")])
    async with aconnect_ws("/rooms/lobby", client) as ws:
        await ws.send_json({"author": "ann", "text": "hi"})
        answer = await ws.receive_json(timeout=5)
        assert answer["members"] == ["ann", "bob"]
        db_session.add(Member(room="lobby", name="cid"))
        await db_session.flush()  # seen by the route's next message
        await ws.send_json({"author": "cid", "text": "hello"})
        assert (await ws.receive_json(timeout=5))["members"] == ["ann", "bob", "cid"]
    assert await db_session.scalar(select(func.count()).select_from(ChatMessage)) == 2
    assert chat_app.LEFT == ["lobby"]


async def test_2_rolled_back(db_session):
    assert await db_session.scalar(select(func.count()).select_from(ChatMessage)) == 0
"""
    )
    chat.runpytest_subprocess("-p", "no:random_order", timeout=NO_HANG).assert_outcomes(passed=2)


def test_app_closing_first_gives_its_close_code(chat: pytest.Pytester) -> None:
    chat.makepyfile(
        HEADER
        + """
async def test_leave(client):
    async with aconnect_ws("/rooms/lobby", client) as ws:
        await ws.send_json({"type": "leave"})
        with pytest.raises(WebSocketDisconnect) as closed:
            await ws.receive_text(timeout=5)
    assert (closed.value.code, closed.value.reason) == (4000, "left the room")


async def test_refused_before_accepting(client):
    with pytest.raises(WebSocketUpgradeError) as refused:
        async with aconnect_ws("/private", client):
            pass
    assert refused.value.response.status_code == 403
"""
    )
    chat.runpytest_subprocess(timeout=NO_HANG).assert_outcomes(passed=2)


def test_several_sockets_at_once(chat: pytest.Pytester) -> None:
    chat.makepyfile(
        HEADER
        + """
async def talk(client, room, author):
    async with aconnect_ws(f"/rooms/{room}", client) as ws:
        answers = []
        for n in range(3):
            await ws.send_json({"author": author, "text": f"{author} {n}"})
            answers.append((await ws.receive_json(timeout=5))["text"])
        return answers


async def test_three_rooms(client, db_session):
    db_session.add(Member(room="a", name="ann"))
    results = await asyncio.wait_for(
        asyncio.gather(talk(client, "a", "ann"), talk(client, "b", "bob"), talk(client, "a", "cy")),
        timeout=20,
    )
    assert results[1] == ["bob 0", "bob 1", "bob 2"]
    async with aconnect_ws("/echo", client) as one, aconnect_ws("/echo", client) as two:
        await two.send_text("second")
        await one.send_text("first")
        assert await one.receive_text(timeout=5) == "first"
        assert await two.receive_text(timeout=5) == "second"
    assert await db_session.scalar(select(func.count()).select_from(ChatMessage)) == 9
"""
    )
    chat.runpytest_subprocess(timeout=NO_HANG).assert_outcomes(passed=1)


def test_handler_exception_closes_1011_and_report_shows_traceback_and_frames(
    chat: pytest.Pytester,
) -> None:
    chat.makepyfile(
        HEADER
        + """
async def test_moderated(client):
    async with aconnect_ws("/rooms/lobby", client) as ws:
        await ws.send_json({"author": "ann", "text": "hi", "token": "tok-QX81-secret"})
        await ws.receive_json(timeout=5)
    async with aconnect_ws("/echo", client) as ws:
        await ws.send_bytes(b"\\x00\\x01")
        await ws.receive_bytes(timeout=5)
    async with aconnect_ws("/rooms/lobby/moderated", client) as ws:
        await ws.send_text("spam")
        with pytest.raises(WebSocketDisconnect) as closed:
            await ws.receive_text(timeout=5)
    assert closed.value.code == 1011
    assert False, "show the report"
"""
    )
    result = chat.runpytest_subprocess(timeout=NO_HANG)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*3 request(s), 1 server exception(s)*",
            "[[]1] WEBSOCKET ws://testserver/rooms/lobby -> 101 Switching Protocols in * ms",
            "    route: /rooms/{room} -> chat_app:create_app.<locals>.chat (chat_app.py:*)",
            "    frames (2; > client to app, < app to client):",
            '      > +* ms text (*): {"author": "ann", "text": "hi", "token": "***"}',
            '      < +* ms text (*): {"room": "lobby", "members": [], *',
            "    closed by the client: code 1000",
            "[[]2] WEBSOCKET ws://testserver/echo -> 101 Switching Protocols in * ms",
            "    frames (2; > client to app, < app to client):",
            "      > +* ms bytes (2): 00 01",
            "      < +* ms bytes (2): 00 01",
            "[[]3] WEBSOCKET ws://testserver/rooms/lobby/moderated -> 101 Switching Protocols*",
            "    frames (1; > client to app, < app to client):",
            "      > +* ms text (4): spam",
            "    server exception (unhandled: it propagated out of the app):",
            "*RuntimeError: moderation failed on 'spam'",
        ]
    )
    section = result.stdout.str().split("fastapi-e2e: requests, server exceptions and SQL")[1]
    assert "tok-QX81-secret" not in section  # the test's source above shows it, not the report
