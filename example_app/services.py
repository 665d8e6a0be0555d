"""Use cases operating on an ``AsyncSession``; routers stay thin HTTP adapters.

Services own transaction boundaries: they commit on success and roll back when
the database rejects a write, leaving the session usable for the caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import CursorResult, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from example_app.errors import Conflict, NotFound
from example_app.models import Item, User
from example_app.schemas import ItemCreate, ItemUpdate, UserCreate, UserUpdate

EMAIL_TAKEN = "email already registered"


async def _commit_or_conflict(session: AsyncSession, conflict_detail: str) -> None:
    try:
        await session.commit()
    except IntegrityError:
        # Checking for duplicates before inserting would race with concurrent
        # requests; the unique constraint is the source of truth, so translate
        # its violation instead. Roll back so the session is usable again.
        await session.rollback()
        raise Conflict(conflict_detail) from None


async def create_user(session: AsyncSession, data: UserCreate) -> User:
    """Insert a user; raises Conflict if the email is already registered."""
    user = User(email=data.email, name=data.name)
    session.add(user)
    await _commit_or_conflict(session, EMAIL_TAKEN)
    # Load server-generated columns explicitly so the result does not depend on
    # the session factory's expire_on_commit setting.
    await session.refresh(user)
    return user


async def get_user(session: AsyncSession, user_id: int) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound(f"User {user_id} not found")
    return user


async def list_users(
    session: AsyncSession, *, limit: int, offset: int
) -> tuple[Sequence[User], int]:
    """Return one page of users ordered by id, plus the total count."""
    total = await session.scalar(select(func.count()).select_from(User))
    page = await session.scalars(select(User).order_by(User.id).limit(limit).offset(offset))
    return page.all(), total or 0


async def update_user(session: AsyncSession, user_id: int, data: UserUpdate) -> User:
    user = await get_user(session, user_id)
    for field, value in data.model_dump(exclude_unset=True, exclude_none=True).items():
        setattr(user, field, value)
    await _commit_or_conflict(session, EMAIL_TAKEN)
    await session.refresh(user)
    return user


async def delete_user(session: AsyncSession, user_id: int) -> None:
    """Delete a user; the database cascades the delete to their items."""
    # A bulk DELETE avoids loading the user (and, via the ORM cascade, its items).
    # DML results are always CursorResults; the cast only informs the type checker.
    result = cast(CursorResult[Any], await session.execute(delete(User).where(User.id == user_id)))
    if result.rowcount == 0:
        raise NotFound(f"User {user_id} not found")
    await session.commit()


async def create_item(session: AsyncSession, owner_id: int, data: ItemCreate) -> Item:
    await get_user(session, owner_id)
    item = Item(owner_id=owner_id, title=data.title, price_cents=data.price_cents)
    session.add(item)
    await session.commit()
    await session.refresh(item)
    return item


async def get_item(session: AsyncSession, item_id: int, *, with_owner: bool = False) -> Item:
    options = (joinedload(Item.owner),) if with_owner else ()
    item = await session.get(Item, item_id, options=options)
    if item is None:
        raise NotFound(f"Item {item_id} not found")
    return item


async def list_items_for_user(
    session: AsyncSession, owner_id: int, *, limit: int, offset: int
) -> Sequence[Item]:
    await get_user(session, owner_id)
    result = await session.scalars(
        select(Item).where(Item.owner_id == owner_id).order_by(Item.id).limit(limit).offset(offset)
    )
    return result.all()


async def update_item(session: AsyncSession, item_id: int, data: ItemUpdate) -> Item:
    item = await get_item(session, item_id)
    for field, value in data.model_dump(exclude_unset=True, exclude_none=True).items():
        setattr(item, field, value)
    await session.commit()
    await session.refresh(item)
    return item


async def delete_item(session: AsyncSession, item_id: int) -> None:
    result = cast(CursorResult[Any], await session.execute(delete(Item).where(Item.id == item_id)))
    if result.rowcount == 0:
        raise NotFound(f"Item {item_id} not found")
    await session.commit()
