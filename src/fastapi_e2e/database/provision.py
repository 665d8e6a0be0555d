"""Create the run's template and test databases on a server, and drop them at the end.

The given server database is used only for admin statements. Every database the
harness creates has a unique name and a COMMENT saying who made it; nothing else on
the server is created, altered, truncated or dropped.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import secrets
import socket
from collections.abc import Awaitable, Callable

import asyncpg
from sqlalchemy.engine import URL

from fastapi_e2e.database.urls import asyncpg_connect_kwargs, mask
from fastapi_e2e.errors import (
    NO_CREATEDB,
    SERVER_AUTH_FAILED,
    SERVER_UNREACHABLE,
    DatabaseSetupError,
)

CONNECT_TIMEOUT = 10.0
NAME_PREFIX = "e2e_"

SchemaBuilder = Callable[[URL], Awaitable[None]]


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def connect_admin(url: URL, timeout: float = CONNECT_TIMEOUT) -> asyncpg.Connection:
    """Connect to the admin database, turning failures into one clear error."""
    kwargs = asyncpg_connect_kwargs(url)
    try:
        return await asyncio.wait_for(asyncpg.connect(**kwargs, timeout=timeout), timeout)
    except (
        asyncpg.InvalidPasswordError,
        asyncpg.InvalidAuthorizationSpecificationError,
    ) as exc:
        raise DatabaseSetupError(SERVER_AUTH_FAILED.format(url=mask(url), cause=exc)) from None
    except (OSError, TimeoutError, asyncio.TimeoutError, asyncpg.PostgresError) as exc:
        cause = str(exc) or type(exc).__name__
        raise DatabaseSetupError(
            SERVER_UNREACHABLE.format(url=mask(url), timeout=timeout, cause=cause)
        ) from None


class TestDatabase:
    """A test database cloned from a template that holds the schema.

    ``async with TestDatabase(admin_url, build_schema) as db:`` creates
    ``db.template_name`` and runs ``build_schema`` on it once, clones ``db.url``
    from it, and on exit drops both (unless ``drop=False``, for a throwaway cluster).
    """

    __test__ = False  # not a pytest test class, despite the name

    def __init__(
        self, admin_url: URL, build_schema: SchemaBuilder | None, *, drop: bool = True
    ) -> None:
        self.admin_url = admin_url
        self.build_schema = build_schema
        self.drop = drop
        run_id = secrets.token_hex(4)
        self.name = f"{NAME_PREFIX}{run_id}"
        self.template_name = f"{self.name}_template"
        self._created: list[str] = []

    @property
    def url(self) -> URL:
        return self.admin_url.set(database=self.name)

    @property
    def template_url(self) -> URL:
        return self.admin_url.set(database=self.template_name)

    def _comment(self, role: str) -> str:
        now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        return (
            f"pytest-fastapi-e2e {role} of pid {os.getpid()} on {socket.gethostname()}, "
            f"created {now}; dropped when that run ends"
        )

    async def _create(
        self, admin: asyncpg.Connection, name: str, role: str, template: str | None
    ) -> None:
        statement = f"CREATE DATABASE {_quote(name)}"
        if template is not None:
            statement += f" TEMPLATE {_quote(template)}"
            # FILE_COPY copies the few files of a small template instead of WAL-logging
            # every block (the PostgreSQL 15 default), which is much faster here.
            if admin.get_server_version().major >= 15:
                statement += " STRATEGY FILE_COPY"
        try:
            await admin.execute(statement)
        except asyncpg.InsufficientPrivilegeError as exc:
            user = self.admin_url.username or "(default user)"
            raise DatabaseSetupError(
                NO_CREATEDB.format(user=user, url=mask(self.admin_url), cause=exc)
            ) from None
        self._created.append(name)
        comment = self._comment(role).replace("'", "''")
        await admin.execute(f"COMMENT ON DATABASE {_quote(name)} IS '{comment}'")

    async def __aenter__(self) -> TestDatabase:
        admin = await connect_admin(self.admin_url)
        try:
            await self._create(admin, self.template_name, "template", None)
            if self.build_schema is not None:
                await self.build_schema(self.template_url)
            await self._create(admin, self.name, "test database", self.template_name)
        except BaseException:
            await self._drop_created(admin)
            raise
        finally:
            if not admin.is_closed():
                await admin.close()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if not self.drop or not self._created:
            return
        admin = await connect_admin(self.admin_url)
        try:
            await self._drop_created(admin)
        finally:
            await admin.close()

    async def _drop_created(self, admin: asyncpg.Connection) -> None:
        force = " WITH (FORCE)" if admin.get_server_version().major >= 13 else ""
        while self._created:
            name = self._created.pop()
            await admin.execute(f"DROP DATABASE IF EXISTS {_quote(name)}{force}")
