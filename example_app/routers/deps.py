"""Shared dependency aliases so route signatures stay short."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query
from sqlalchemy.ext.asyncio import AsyncSession

from example_app.auth import require_api_key
from example_app.db import get_session

SessionDep = Annotated[AsyncSession, Depends(get_session)]
ApiKeyDep = Annotated[str, Depends(require_api_key)]
LimitQuery = Annotated[int, Query(ge=1, le=100, description="Page size")]
OffsetQuery = Annotated[int, Query(ge=0, description="Rows to skip")]
