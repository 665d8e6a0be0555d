"""pytest-fastapi-e2e: HTTP-level tests of a FastAPI app against a real PostgreSQL.

Configure it with a session-scoped ``e2e_config`` fixture returning ``E2EConfig``;
tests then use the ``client``, ``db_session``, ``db_connection``, ``app``,
``e2e_database_url`` and ``e2e_queries`` fixtures.
"""

from typing import TYPE_CHECKING, Any

from fastapi_e2e.config import E2EConfig
from fastapi_e2e.errors import (
    ClusterStartError,
    ConfigError,
    ConnectionEscapeError,
    DatabaseSetupError,
    E2EError,
    LifespanError,
    LoopScopeError,
    PostgresNotFoundError,
    SessionGateTimeout,
)

__all__ = [
    "ClusterStartError",
    "ConfigError",
    "ConnectionEscapeError",
    "DatabaseSetupError",
    "E2EConfig",
    "E2EError",
    "LifespanError",
    "LoopScopeError",
    "PostgresNotFoundError",
    "QueryCounter",
    "SessionGateTimeout",
]

if TYPE_CHECKING:
    from fastapi_e2e.diagnosis.queries import QueryCounter


def __getattr__(name: str) -> Any:
    # QueryCounter brings the report's code (Starlette, SQLAlchemy): loaded on use.
    if name == "QueryCounter":
        from fastapi_e2e.diagnosis.queries import QueryCounter

        return QueryCounter
    raise AttributeError(f"module 'fastapi_e2e' has no attribute {name!r}")
