"""Recording limits: bodies, exchanges and statements are bounded."""

from __future__ import annotations

from fastapi_e2e.diagnosis.record import Body, Limits, Recording, Statement


def test_body_keeps_the_first_bytes_and_counts_the_rest() -> None:
    body = Body(limit=4)
    body.add(b"abc")
    body.add(b"defg")
    assert (bytes(body.data), body.size, body.cut) == (b"abcd", 7, True)


def test_recording_keeps_the_newest_exchanges_and_statements() -> None:
    recording = Recording(Limits(exchanges=2, statements=3))
    for path in ("/a", "/b", "/c"):
        recording.open_exchange({"type": "http", "method": "GET", "path": path})
    for number in range(5):
        recording.add_statement(Statement(f"SELECT {number}", (), None, False, None))
    assert [ex.scope["path"] for ex in recording.exchanges] == ["/b", "/c"]
    assert (recording.exchange_count, recording.dropped_exchanges) == (3, 1)
    assert [st.sql for st in recording.statements] == ["SELECT 2", "SELECT 3", "SELECT 4"]
    assert recording.dropped_statements == 2
