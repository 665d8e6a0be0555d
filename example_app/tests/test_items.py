"""Item endpoints and the user/item relationship."""

from __future__ import annotations

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from example_app.models import Item
from example_app.tests.conftest import MakeItem, MakeUser
from example_app.tests.helpers import assert_problem


async def test_create_item_for_user(
    client: httpx.AsyncClient,
    db_session: AsyncSession,
    make_user: MakeUser,
    api_headers: dict[str, str],
) -> None:
    owner = await make_user()

    response = await client.post(
        f"/users/{owner.id}/items", json={"title": "Lamp", "price_cents": 1999}, headers=api_headers
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["owner_id"] == owner.id
    assert response.headers["location"] == f"/items/{body['id']}"
    item = await db_session.scalar(select(Item).where(Item.id == body["id"]))
    assert item is not None
    assert (item.title, item.price_cents, item.owner_id) == ("Lamp", 1999, owner.id)


async def test_get_item_includes_owner(
    client: httpx.AsyncClient, make_user: MakeUser, make_item: MakeItem
) -> None:
    owner = await make_user(email="owner@example.com", name="Owner")
    item = await make_item(owner, title="Chair", price_cents=4500)

    response = await client.get(f"/items/{item.id}")

    assert response.status_code == 200
    body = response.json()
    assert body["title"] == "Chair"
    assert body["owner"]["id"] == owner.id
    assert body["owner"]["email"] == "owner@example.com"


async def test_list_user_items_returns_only_their_items(
    client: httpx.AsyncClient, make_user: MakeUser, make_item: MakeItem
) -> None:
    alice = await make_user()
    bob = await make_user()
    await make_item(alice, title="A1")
    await make_item(bob, title="B1")
    await make_item(alice, title="A2")

    response = await client.get(f"/users/{alice.id}/items")

    assert response.status_code == 200
    assert [i["title"] for i in response.json()] == ["A1", "A2"]
    assert_problem(await client.get("/users/999999/items"), 404)


async def test_create_item_for_unknown_user_is_404(
    client: httpx.AsyncClient, api_headers: dict[str, str]
) -> None:
    response = await client.post(
        "/users/999999/items", json={"title": "Orphan", "price_cents": 1}, headers=api_headers
    )
    assert_problem(response, 404)


async def test_negative_price_is_422(
    client: httpx.AsyncClient, make_user: MakeUser, api_headers: dict[str, str]
) -> None:
    owner = await make_user()
    response = await client.post(
        f"/users/{owner.id}/items", json={"title": "Bad", "price_cents": -1}, headers=api_headers
    )
    body = assert_problem(response, 422)
    assert isinstance(body["errors"], list)
    assert body["errors"][0]["loc"] == ["body", "price_cents"]


async def test_patch_and_delete_item(
    client: httpx.AsyncClient,
    db_session: AsyncSession,
    make_user: MakeUser,
    make_item: MakeItem,
    api_headers: dict[str, str],
) -> None:
    item = await make_item(await make_user(), title="Old", price_cents=10)

    patched = await client.patch(f"/items/{item.id}", json={"price_cents": 20}, headers=api_headers)
    assert patched.status_code == 200
    assert (patched.json()["title"], patched.json()["price_cents"]) == ("Old", 20)

    assert (await client.delete(f"/items/{item.id}", headers=api_headers)).status_code == 204
    assert_problem(await client.get(f"/items/{item.id}"), 404)
    assert await db_session.scalar(select(func.count()).select_from(Item)) == 0


async def test_deleting_user_cascades_to_items(
    client: httpx.AsyncClient,
    db_session: AsyncSession,
    make_user: MakeUser,
    make_item: MakeItem,
    api_headers: dict[str, str],
) -> None:
    owner = await make_user()
    item = await make_item(owner)

    assert (await client.delete(f"/users/{owner.id}", headers=api_headers)).status_code == 204

    assert_problem(await client.get(f"/items/{item.id}"), 404)
    remaining = await db_session.scalar(
        select(func.count()).select_from(Item).where(Item.owner_id == owner.id)
    )
    assert remaining == 0
