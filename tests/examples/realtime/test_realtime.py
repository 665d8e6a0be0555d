import json

import pytest
from httpx_ws import WebSocketDisconnect, aconnect_ws
from notifications_app import Notification


async def test_feed_sends_unread_notifications(client, db_session):
    db_session.add_all([Notification(user="ann", text="a"), Notification(user="ann", text="b")])
    events = []
    async with client.stream("GET", "/users/ann/events") as response:
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line.removeprefix("data: ")))
            if len(events) == 2:
                break  # leaving the block stops the app's endless generator
    assert [event["text"] for event in events] == ["a", "b"]


async def test_chat_room_answers_and_closes_with_its_code(client):
    async with aconnect_ws("/rooms/lobby", client) as ws:
        await ws.send_json({"author": "ann", "text": "hi"})
        assert (await ws.receive_json())["text"] == "hi"
        await ws.send_json({"type": "leave"})
        with pytest.raises(WebSocketDisconnect) as closed:
            await ws.receive_text()
    assert closed.value.code == 4000
