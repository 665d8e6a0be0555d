"""User CRUD over HTTP, checked against the database through ``db_session``."""

from __future__ import annotations

import json

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from example_app.models import AuditEntry, User
from example_app.tests.conftest import MakeUser
from example_app.tests.helpers import assert_problem


async def test_create_user_returns_201_and_row_is_visible(
    client: httpx.AsyncClient, db_session: AsyncSession, api_headers: dict[str, str]
) -> None:
    response = await client.post(
        "/users", json={"email": "Ada@Example.com", "name": "Ada"}, headers=api_headers
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["email"] == "ada@example.com"
    assert body["name"] == "Ada"
    assert body["created_at"]
    assert response.headers["location"] == f"/users/{body['id']}"

    user = await db_session.scalar(select(User).where(User.id == body["id"]))
    assert user is not None
    assert user.email == "ada@example.com"


async def test_seeded_user_is_visible_via_get(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    user = await make_user(email="grace@example.com", name="Grace")

    response = await client.get(f"/users/{user.id}")

    assert response.status_code == 200
    assert response.json()["email"] == "grace@example.com"
    assert response.json()["name"] == "Grace"


async def test_get_unknown_user_is_404_problem(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/users/999999"), 404)
    assert body["detail"] == "User 999999 not found"


async def test_list_users_paginates_in_id_order(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    for n in range(5):
        await make_user(email=f"page-{n}@example.com")

    response = await client.get("/users", params={"limit": 2, "offset": 1})

    assert response.status_code == 200
    page = response.json()
    # The total also proves no other test's rows leaked into this one.
    assert page["total"] == 5
    assert (page["limit"], page["offset"]) == (2, 1)
    assert [u["email"] for u in page["items"]] == ["page-1@example.com", "page-2@example.com"]

    last = (await client.get("/users", params={"limit": 2, "offset": 4})).json()
    assert [u["email"] for u in last["items"]] == ["page-4@example.com"]


async def test_list_users_rejects_out_of_range_limit(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/users", params={"limit": 0}), 422)
    assert body["errors"]


async def test_patch_user_updates_only_given_fields(
    client: httpx.AsyncClient,
    db_session: AsyncSession,
    make_user: MakeUser,
    api_headers: dict[str, str],
) -> None:
    user = await make_user(email="old@example.com", name="Old Name")

    response = await client.patch(
        f"/users/{user.id}", json={"name": "New Name"}, headers=api_headers
    )

    assert response.status_code == 200, response.text
    assert response.json()["name"] == "New Name"
    assert response.json()["email"] == "old@example.com"
    # db_session still holds its own copy of the row; refresh to read the committed change.
    await db_session.refresh(user)
    assert user.name == "New Name"


async def test_patch_user_to_taken_email_is_409(
    client: httpx.AsyncClient, make_user: MakeUser, api_headers: dict[str, str]
) -> None:
    await make_user(email="taken@example.com")
    user = await make_user(email="mine@example.com")

    response = await client.patch(
        f"/users/{user.id}", json={"email": "taken@example.com"}, headers=api_headers
    )

    assert_problem(response, 409)
    assert (await client.get(f"/users/{user.id}")).json()["email"] == "mine@example.com"


async def test_delete_user_returns_204_then_404(
    client: httpx.AsyncClient, make_user: MakeUser, api_headers: dict[str, str]
) -> None:
    user = await make_user()

    response = await client.delete(f"/users/{user.id}", headers=api_headers)

    assert response.status_code == 204
    assert response.content == b""
    assert_problem(await client.get(f"/users/{user.id}"), 404)
    assert_problem(await client.delete(f"/users/{user.id}", headers=api_headers), 404)


async def test_duplicate_email_is_409_and_earlier_rows_survive_the_rollback(
    client: httpx.AsyncClient,
    db_session: AsyncSession,
    make_user: MakeUser,
    api_headers: dict[str, str],
) -> None:
    await make_user(email="seeded@example.com")
    first = await client.post(
        "/users", json={"email": "dup@example.com", "name": "First"}, headers=api_headers
    )
    assert first.status_code == 201

    # The service hits the unique constraint, rolls back and reports a conflict;
    # that rollback must not take the rows written before it with it.
    duplicate = await client.post(
        "/users", json={"email": "DUP@example.com", "name": "Second"}, headers=api_headers
    )
    body = assert_problem(duplicate, 409)
    assert body["detail"] == "email already registered"
    assert_problem(
        await client.post(
            "/users", json={"email": "seeded@example.com", "name": "Third"}, headers=api_headers
        ),
        409,
    )

    emails = set(await db_session.scalars(select(User.email)))
    assert emails == {"seeded@example.com", "dup@example.com"}
    # The app keeps working normally after the conflict.
    after = await client.post(
        "/users", json={"email": "after@example.com", "name": "After"}, headers=api_headers
    )
    assert after.status_code == 201


async def test_create_user_writes_audit_entry_in_background(
    client: httpx.AsyncClient, db_session: AsyncSession, api_headers: dict[str, str]
) -> None:
    response = await client.post(
        "/users", json={"email": "audited@example.com", "name": "Audited"}, headers=api_headers
    )
    assert response.status_code == 201

    entries = (await db_session.scalars(select(AuditEntry))).all()
    assert [e.action for e in entries] == ["user.created"]
    assert json.loads(entries[0].detail) == {
        "user_id": response.json()["id"],
        "email": "audited@example.com",
    }


async def test_failed_create_writes_no_audit_entry(
    client: httpx.AsyncClient,
    db_session: AsyncSession,
    make_user: MakeUser,
    api_headers: dict[str, str],
) -> None:
    await make_user(email="exists@example.com")

    response = await client.post(
        "/users", json={"email": "exists@example.com", "name": "Again"}, headers=api_headers
    )

    assert response.status_code == 409
    assert await db_session.scalar(select(func.count()).select_from(AuditEntry)) == 0
