"""API key protection and the problem+json error format."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from example_app.models import User
from example_app.tests.helpers import assert_problem


@pytest.mark.parametrize(
    ("headers", "detail"),
    [({}, "Missing X-API-Key header"), ({"X-API-Key": "wrong-key"}, "Invalid API key")],
    ids=["missing-key", "wrong-key"],
)
async def test_write_without_valid_key_is_401_problem(
    client: httpx.AsyncClient,
    db_session: AsyncSession,
    headers: dict[str, str],
    detail: str,
) -> None:
    response = await client.post(
        "/users", json={"email": "intruder@example.com", "name": "X"}, headers=headers
    )

    body = assert_problem(response, 401)
    assert body["detail"] == detail
    assert body["title"] == "Unauthorized"
    assert response.headers["www-authenticate"] == "ApiKey"
    assert await db_session.scalar(select(func.count()).select_from(User)) == 0


async def test_every_write_endpoint_requires_a_key(client: httpx.AsyncClient) -> None:
    # Auth must reject before validation or lookups, so bogus ids/bodies still give 401.
    calls = [
        ("PATCH", "/users/1"),
        ("DELETE", "/users/1"),
        ("POST", "/users/1/items"),
        ("PATCH", "/items/1"),
        ("DELETE", "/items/1"),
    ]
    for method, url in calls:
        response = await client.request(method, url, json={})
        assert_problem(response, 401)


async def test_reads_need_no_key(client: httpx.AsyncClient) -> None:
    assert (await client.get("/users")).status_code == 200


async def test_validation_error_is_422_problem(
    client: httpx.AsyncClient, api_headers: dict[str, str]
) -> None:
    response = await client.post(
        "/users", json={"email": "not-an-email", "name": "", "admin": True}, headers=api_headers
    )

    body = assert_problem(response, 422)
    assert body["title"] == "Validation Error"
    assert isinstance(body["errors"], list)
    failed = {tuple(error["loc"]) for error in body["errors"]}
    assert failed == {("body", "email"), ("body", "name"), ("body", "admin")}


async def test_unknown_route_is_404_problem(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/no-such-route"), 404)
    assert body["type"] == "about:blank"


async def test_wrong_method_is_405_problem(client: httpx.AsyncClient) -> None:
    assert_problem(await client.put("/users"), 405)
