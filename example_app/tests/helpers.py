"""Assertions shared by several test modules."""

from __future__ import annotations

import httpx

from example_app.errors import PROBLEM_CONTENT_TYPE


def assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    """Assert ``response`` is an RFC 9457 problem with ``status``; return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
    body: dict[str, object] = response.json()
    assert body["status"] == status
    assert isinstance(body["type"], str)
    assert isinstance(body["title"], str)
    assert body["title"]
    assert isinstance(body["detail"], str)
    return body
