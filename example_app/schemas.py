"""Pydantic request and response models (the HTTP contract, separate from ORM models)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from example_app.models import EMAIL_MAX_LENGTH, NAME_MAX_LENGTH, TITLE_MAX_LENGTH

# A pragmatic syntax check; deliverability is the job of a confirmation mail,
# and it avoids depending on email-validator. Lower-casing makes the unique
# constraint case-insensitive in practice.
Email = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        to_lower=True,
        max_length=EMAIL_MAX_LENGTH,
        pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
    ),
]
Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=NAME_MAX_LENGTH)
]
Title = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=TITLE_MAX_LENGTH)
]
PriceCents = Annotated[int, Field(ge=0, le=2_000_000_000)]


class _Input(BaseModel):
    # Reject unknown fields so typos surface as 422 instead of being ignored.
    model_config = ConfigDict(extra="forbid")


class _Output(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class UserCreate(_Input):
    email: Email
    name: Name


class UserUpdate(_Input):
    """Partial update; omitted or null fields stay unchanged."""

    email: Email | None = None
    name: Name | None = None


class UserRead(_Output):
    id: int
    email: str
    name: str
    created_at: datetime


class UserPage(BaseModel):
    items: list[UserRead]
    total: int
    limit: int
    offset: int


class ItemCreate(_Input):
    title: Title
    price_cents: PriceCents


class ItemUpdate(_Input):
    """Partial update; omitted or null fields stay unchanged."""

    title: Title | None = None
    price_cents: PriceCents | None = None


class ItemRead(_Output):
    id: int
    owner_id: int
    title: str
    price_cents: int
    created_at: datetime


class ItemWithOwner(ItemRead):
    owner: UserRead


class HealthStatus(BaseModel):
    status: str
    database: str
