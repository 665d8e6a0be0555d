"""SQLAlchemy's PostgreSQL async dialects, as subclasses registered while the plugin is loaded.

``create_async_engine("postgresql+asyncpg://...")`` or ``"postgresql+psycopg://..."``
anywhere in the process (the app's modules, its lifespan, a DI container, an Alembic
``env.py``) then builds an engine of these classes. They behave exactly as
SQLAlchemy's own, with two additions: the engine is announced to the active wiring
when it is created, and ``connect()`` asks that wiring where to connect. With no
wiring active (before the run, after it) they are SQLAlchemy's dialects unchanged.

``registration.py`` registers the names with ``sqlalchemy.dialects.registry``, the
public way to supply a dialect; registered names are looked up before the built-in
ones.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg, PGDialectAsync_psycopg
from sqlalchemy.engine import Engine
from sqlalchemy.engine.interfaces import DBAPIConnection

from fastapi_e2e.database import wiring


class WiredDialect:
    """What the registered dialects add to SQLAlchemy's: announce engines, ask where to connect."""

    e2e_kwargs: dict[str, Any]
    """The keyword arguments the dialect was made with (json_serializer, ...)."""
    e2e_role: str = "app"
    """"app" for every engine but the harness's: "root" (tests' connections) and
    "harness" (never pinned)."""
    e2e_connect_args: dict[str, Any]
    """What the app's engine passes to the driver besides the server (connect_args,
    URL query), as seen at its last connect."""
    e2e_connect_args_version: int
    """Counts changes of ``e2e_connect_args``: a new root engine copies the new ones."""
    e2e_primary: WiredDialect | None = None
    """For a root engine: the app engine's dialect whose connect arguments it copies."""
    e2e_warm: bool = False
    """Its commits-mode connections come from ``warm.py``, which closes them itself."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.e2e_kwargs = dict(kwargs)
        self.e2e_connect_args = {}
        self.e2e_connect_args_version = 0

    @classmethod
    def engine_created(cls, engine: Engine) -> None:
        super().engine_created(engine)  # type: ignore[misc]
        wiring.engine_created(engine)

    def on_connect(self) -> Any:
        # The set-up (codecs, notice handlers) runs on the pinned connection's own
        # server connection, when that is opened: most never are.
        set_up = super().on_connect()  # type: ignore[misc]
        if set_up is None:
            return None

        def set_up_when_opened(connection: Any) -> None:
            if isinstance(connection, wiring.PinnedConnection):
                connection.on_own_connection(set_up)
            else:
                set_up(connection)

        return set_up_when_opened

    def do_ping(self, dbapi_connection: Any) -> bool:
        if isinstance(dbapi_connection, wiring.PinnedConnection):
            if not dbapi_connection.opened:
                return True  # nothing to ping: tests use the harness's connection
            dbapi_connection = dbapi_connection.own
        return super().do_ping(dbapi_connection)  # type: ignore[misc, no-any-return]

    def is_disconnect(self, e: Any, connection: Any, cursor: Any) -> bool:
        # Judge the connection the statement ran on, without opening a pinned one's own.
        if isinstance(connection, wiring.PinnedConnection):
            connection = connection.in_test() or (connection.own if connection.opened else None)
        return super().is_disconnect(e, connection, cursor)  # type: ignore[misc, no-any-return]

    def get_isolation_level(self, dbapi_connection: Any) -> Any:
        # Asked of the connection the work goes to: psycopg's answer rolls back an
        # idle connection, which must not be read as "the pinned one is idle".
        if isinstance(dbapi_connection, wiring.PinnedConnection):
            dbapi_connection = dbapi_connection.in_test() or dbapi_connection.own
        return super().get_isolation_level(dbapi_connection)  # type: ignore[misc]

    def connect(self, *cargs: Any, **cparams: Any) -> DBAPIConnection:
        connect = super().connect  # type: ignore[misc]
        active = wiring.active()
        if active is None:
            return connect(*cargs, **cparams)  # type: ignore[no-any-return]
        return active.connect(self, connect, cargs, cparams)


class AsyncpgDialect(WiredDialect, PGDialect_asyncpg):
    """``postgresql+asyncpg``."""

    supports_statement_cache = True  # SQLAlchemy asks each subclass to say so


class AsyncPsycopgDialect(WiredDialect, PGDialectAsync_psycopg):
    """``postgresql+psycopg`` (and ``+psycopg_async``) made by ``create_async_engine``."""

    supports_statement_cache = True


class PsycopgDialect(PGDialect_psycopg):
    """``postgresql+psycopg``: sync engines stay SQLAlchemy's; async ones are wired."""

    supports_statement_cache = True

    @classmethod
    def get_async_dialect_cls(cls, url: Any) -> type[AsyncPsycopgDialect]:
        return AsyncPsycopgDialect
