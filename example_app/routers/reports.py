"""Report endpoints. Both carry a deliberate bug, kept for the failure-report demo
(``example_app/tests/test_report_demo.py``): do not copy them."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import func, select

from example_app.models import Item, User
from example_app.routers.deps import SessionDep

router = APIRouter(prefix="/reports", tags=["reports"])


@router.get("/users/{user_id}/average-price")
async def average_price(user_id: int, session: SessionDep) -> dict[str, int]:
    prices = list(await session.scalars(select(Item.price_cents).where(Item.owner_id == user_id)))
    # Bug: a user without items divides by zero; the app's 500 handler hides it.
    return {"user_id": user_id, "average_cents": sum(prices) // len(prices)}


@router.get("/item-counts")
async def item_counts(session: SessionDep) -> dict[str, int]:
    users = list(await session.scalars(select(User).order_by(User.id)))
    counts = {}
    for user in users:
        # Bug: one query per user (N+1); a GROUP BY would need one.
        counts[user.email] = int(
            await session.scalar(select(func.count(Item.id)).where(Item.owner_id == user.id)) or 0
        )
    return counts
