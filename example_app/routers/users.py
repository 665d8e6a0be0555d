"""User endpoints: CRUD with API-key protected writes."""

from __future__ import annotations

import json

from fastapi import APIRouter, BackgroundTasks, Depends, Response, status

from example_app import services
from example_app.audit import write_audit
from example_app.ratelimit import enforce_rate_limit
from example_app.routers.deps import ApiKeyDep, LimitQuery, OffsetQuery, SessionDep
from example_app.schemas import UserCreate, UserPage, UserRead, UserUpdate

router = APIRouter(prefix="/users", tags=["users"], dependencies=[Depends(enforce_rate_limit)])


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_user(
    data: UserCreate,
    session: SessionDep,
    background: BackgroundTasks,
    response: Response,
    _api_key: ApiKeyDep,
) -> UserRead:
    user = await services.create_user(session, data)
    # Audited after the response so a slow audit write never delays the client.
    background.add_task(
        write_audit, "user.created", json.dumps({"user_id": user.id, "email": user.email})
    )
    response.headers["Location"] = f"/users/{user.id}"
    return UserRead.model_validate(user)


@router.get("")
async def list_users(
    session: SessionDep, limit: LimitQuery = 20, offset: OffsetQuery = 0
) -> UserPage:
    users, total = await services.list_users(session, limit=limit, offset=offset)
    return UserPage(
        items=[UserRead.model_validate(u) for u in users], total=total, limit=limit, offset=offset
    )


@router.get("/{user_id}")
async def get_user(user_id: int, session: SessionDep) -> UserRead:
    return UserRead.model_validate(await services.get_user(session, user_id))


@router.patch("/{user_id}")
async def update_user(
    user_id: int, data: UserUpdate, session: SessionDep, _api_key: ApiKeyDep
) -> UserRead:
    return UserRead.model_validate(await services.update_user(session, user_id, data))


@router.delete("/{user_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def delete_user(user_id: int, session: SessionDep, _api_key: ApiKeyDep) -> None:
    await services.delete_user(session, user_id)
