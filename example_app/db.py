"""Database engine construction and the request-scoped session dependency.

``SessionLocal`` is created unbound at import time so other modules (such as
background tasks) can import it directly; the app lifespan binds it to the
engine once the configuration is known.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

# expire_on_commit=False: response models are built after commit, and an
# expired attribute would need lazy IO, which async sessions cannot do implicitly.
SessionLocal: async_sessionmaker[AsyncSession] = async_sessionmaker(expire_on_commit=False)


def build_engine(database_url: str) -> AsyncEngine:
    """Create the application's engine for ``database_url``."""
    # pre_ping protects long-running processes against connections the server dropped.
    return create_async_engine(database_url, pool_pre_ping=True)


def is_bound(factory: async_sessionmaker[AsyncSession]) -> bool:
    """Whether ``factory`` has been configured with an engine or connection."""
    return factory.kw.get("bind") is not None


async def get_session() -> AsyncIterator[AsyncSession]:
    """FastAPI dependency yielding one session per request."""
    if not is_bound(SessionLocal):
        # Fail with a clear message instead of SQLAlchemy's obscure
        # "no bind configured" error deep inside the first query.
        raise RuntimeError("Database session factory not initialized")
    async with SessionLocal() as session:
        yield session
