"""pytest-fastapi-e2e: HTTP-level tests of a FastAPI app against a real PostgreSQL.

Configure it with a session-scoped ``e2e_config`` fixture returning ``E2EConfig``;
tests then use the ``client``, ``db_session``, ``db_connection``, ``app``,
``e2e_database_url``, ``e2e_queries`` and ``live_server`` fixtures; ``seed`` and
``seed_files`` declare rows shared by a module, class, package or the whole run.
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
    "LiveServer",
    "LoopScopeError",
    "PostgresNotFoundError",
    "QueryCounter",
    "SessionGateTimeout",
    "current_session",
    "seed",
    "seed_files",
]

if TYPE_CHECKING:
    from fastapi_e2e.database.seeds import current_session
    from fastapi_e2e.diagnosis.queries import QueryCounter
    from fastapi_e2e.fixtures import seed, seed_files
    from fastapi_e2e.server.live import LiveServer


def __getattr__(name: str) -> Any:
    # QueryCounter brings the report's code (Starlette, SQLAlchemy): loaded on use.
    if name == "QueryCounter":
        from fastapi_e2e.diagnosis.queries import QueryCounter

        return QueryCounter
    if name == "LiveServer":  # the type of live_server, for annotations (Starlette)
        from fastapi_e2e.server.live import LiveServer

        return LiveServer
    if name in ("seed", "seed_files"):  # fixture factories: pytest
        from fastapi_e2e import fixtures

        return getattr(fixtures, name)
    if name == "current_session":  # SQLAlchemy
        from fastapi_e2e.database.seeds import current_session

        return current_session
    raise AttributeError(f"module 'fastapi_e2e' has no attribute {name!r}")
