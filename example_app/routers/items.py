"""Item endpoints: created under their owner, addressed flat by id afterwards."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response, status

from example_app import services
from example_app.ratelimit import enforce_rate_limit
from example_app.routers.deps import ApiKeyDep, LimitQuery, OffsetQuery, SessionDep
from example_app.schemas import ItemCreate, ItemRead, ItemUpdate, ItemWithOwner

router = APIRouter(tags=["items"], dependencies=[Depends(enforce_rate_limit)])


@router.post("/users/{user_id}/items", status_code=status.HTTP_201_CREATED)
async def create_item(
    user_id: int, data: ItemCreate, session: SessionDep, response: Response, _api_key: ApiKeyDep
) -> ItemRead:
    item = await services.create_item(session, user_id, data)
    response.headers["Location"] = f"/items/{item.id}"
    return ItemRead.model_validate(item)


@router.get("/users/{user_id}/items")
async def list_user_items(
    user_id: int, session: SessionDep, limit: LimitQuery = 20, offset: OffsetQuery = 0
) -> list[ItemRead]:
    items = await services.list_items_for_user(session, user_id, limit=limit, offset=offset)
    return [ItemRead.model_validate(i) for i in items]


@router.get("/items/{item_id}")
async def get_item(item_id: int, session: SessionDep) -> ItemWithOwner:
    return ItemWithOwner.model_validate(await services.get_item(session, item_id, with_owner=True))


@router.patch("/items/{item_id}")
async def update_item(
    item_id: int, data: ItemUpdate, session: SessionDep, _api_key: ApiKeyDep
) -> ItemRead:
    return ItemRead.model_validate(await services.update_item(session, item_id, data))


@router.delete("/items/{item_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def delete_item(item_id: int, session: SessionDep, _api_key: ApiKeyDep) -> None:
    await services.delete_item(session, item_id)
