"""Replay lines: a curl command and the client call, quoted for a shell and for Python."""

from __future__ import annotations

from fastapi_e2e.diagnosis.reproduce import client_line, curl_line

DEFAULTS = [("host", "testserver"), ("accept", "*/*"), ("user-agent", "python-httpx/0.28.1")]


def test_get_without_extras_is_a_bare_curl() -> None:
    assert curl_line("GET", "/items?page=2", DEFAULTS, None) == (
        "curl 'http://localhost:8000/items?page=2'"
    )
    assert client_line("GET", "/items?page=2", DEFAULTS) == "await client.get('/items?page=2')"


def test_json_post_quotes_body_and_headers() -> None:
    headers = [*DEFAULTS, ("content-type", "application/json"), ("x-api-key", "***")]
    assert curl_line("POST", "/users", headers, '{"name": "O\'Brien"}') == (
        "curl -X POST http://localhost:8000/users -H 'content-type: application/json' "
        "-H 'x-api-key: ***' --data-raw '{\"name\": \"O'\"'\"'Brien\"}'"
    )
    assert client_line("POST", "/users", headers, json_body={"name": "O'Brien"}) == (
        "await client.post('/users', json={'name': \"O'Brien\"}, headers={'x-api-key': '***'})"
    )


def test_get_with_a_body_uses_request() -> None:
    assert client_line("GET", "/search", DEFAULTS, content="q") == (
        "await client.request('GET', '/search', content='q')"
    )
