"""The schema sources: metadata create_all or Alembic to head, each with a cache key."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, create_mock_engine, event, pool
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from fastapi_e2e.errors import (
    ALEMBIC_NOT_REDIRECTED,
    EXTENSION_FAILED,
    SCHEMA_FAILED,
    ConfigError,
    DatabaseSetupError,
)
from fastapi_e2e.importing import resolve


def schemas_of(metadata: MetaData) -> list[str]:
    """The PostgreSQL schemas the metadata's tables (and sequences) live in, sorted."""
    names = {table.schema for table in metadata.tables.values() if table.schema}
    if metadata.schema:
        names.add(metadata.schema)
    return sorted(names)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def create_all(url: URL, metadata: Any) -> None:
    """Create every schema and table of ``metadata`` in the database at ``url``."""
    if not isinstance(metadata, MetaData):
        raise ConfigError(
            f"E2EConfig.metadata resolved to {metadata!r}, which is not a SQLAlchemy "
            "MetaData. Point it at your declarative base's metadata, e.g. "
            "'myapp.models:Base.metadata'."
        )
    engine = create_async_engine(url, poolclass=pool.NullPool)
    try:
        async with engine.begin() as connection:
            for name in schemas_of(metadata):  # create_all creates no schemas
                await connection.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {_quote(name)}")
            await connection.run_sync(metadata.create_all)
    except Exception as exc:
        raise DatabaseSetupError(
            SCHEMA_FAILED.format(what="metadata.create_all", cause=exc)
        ) from exc
    finally:
        await engine.dispose()


async def upgrade_to_head(url: URL, alembic_ini: str | os.PathLike[str]) -> None:
    """Run the Alembic migrations of ``alembic_ini`` to head against ``url``.

    Runs in a worker thread: async env.py files call ``asyncio.run()``, which refuses
    to start inside the harness's running event loop.
    """
    try:
        from alembic import command
        from alembic.config import Config
    except ImportError:
        raise ConfigError(
            "E2EConfig.alembic_ini is set but Alembic is not installed. Install it "
            "(`pip install 'pytest-fastapi-e2e[alembic]'`) or use metadata=... instead."
        ) from None
    ini = Path(alembic_ini)
    if not ini.is_file():
        raise ConfigError(
            f"E2EConfig.alembic_ini is {str(alembic_ini)!r}, which is not a file (relative "
            f"paths are taken from the current directory, {Path.cwd()}). Give the path to "
            "your alembic.ini."
        )
    config = Config(str(ini))
    # ConfigParser interpolates '%', which may appear in a password.
    rendered = url.render_as_string(hide_password=False).replace("%", "%%")
    config.set_main_option("sqlalchemy.url", rendered)
    config.attributes["configure_logger"] = False
    tried: list[str] = []

    def remember(dialect: Any, record: Any, cargs: Any, cparams: dict[str, Any]) -> None:
        if getattr(dialect, "e2e_role", None) is None:  # not a wired dialect
            where = {
                k: cparams[k]
                for k in ("host", "port", "user", "dbname", "database")
                if k in cparams
            }
            tried.append(f"{dialect.name}+{dialect.driver} {where}")

    event.listen(Engine, "do_connect", remember)
    try:
        await asyncio.to_thread(command.upgrade, config, "head")
    except Exception as exc:
        if tried:  # env.py connected with an engine the wiring does not redirect
            cause = str(getattr(exc, "orig", exc)).splitlines()[0]
            raise DatabaseSetupError(
                ALEMBIC_NOT_REDIRECTED.format(ini=ini, tried=tried[-1], cause=cause)
            ) from exc
        raise DatabaseSetupError(
            SCHEMA_FAILED.format(what=f"alembic upgrade head ({ini})", cause=exc)
        ) from exc
    finally:
        event.remove(Engine, "do_connect", remember)


class MetadataSchema:
    """The schema of a SQLAlchemy MetaData (or the import string naming one)."""

    description = "metadata.create_all"

    def __init__(self, metadata: Any) -> None:
        self._given = metadata

    @functools.cached_property
    def metadata(self) -> Any:
        return resolve(self._given, "metadata")

    def key(self) -> str:
        """The DDL create_all would run, as PostgreSQL would receive it."""
        statements: list[str] = []

        def record(sql: Any, *args: Any, **kwargs: Any) -> None:
            statements.append(str(sql.compile(dialect=engine.dialect)))

        if not isinstance(self.metadata, MetaData):
            return f"not metadata: {self.metadata!r}"  # build() reports the error
        engine = create_mock_engine(make_url("postgresql+asyncpg://"), record)
        statements.extend(f"CREATE SCHEMA {_quote(n)}" for n in schemas_of(self.metadata))
        self.metadata.create_all(engine, checkfirst=False)
        return "\n".join(statements)

    async def build(self, url: URL) -> None:
        await create_all(url, self.metadata)


class AlembicSchema:
    """The schema that ``alembic upgrade head`` builds from an alembic.ini's scripts."""

    def __init__(self, alembic_ini: str | os.PathLike[str]) -> None:
        self.ini = alembic_ini
        self.description = f"alembic upgrade head ({alembic_ini})"

    def key(self) -> str:
        """The ini file and every file of the script directory (env.py, versions)."""
        ini = Path(self.ini)
        if not ini.is_file():
            return f"missing: {ini}"  # build() reports the error
        try:
            from alembic.config import Config
            from alembic.script import ScriptDirectory

            script_dir = Path(ScriptDirectory.from_config(Config(str(ini))).dir)
        except Exception as exc:  # build() runs Alembic and reports it properly
            return f"unreadable: {type(exc).__name__}: {exc}"
        digest = hashlib.sha256(ini.read_bytes())
        for path in sorted(script_dir.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(script_dir)).encode())
                digest.update(path.read_bytes())
        return digest.hexdigest()

    async def build(self, url: URL) -> None:
        await upgrade_to_head(url, self.ini)


async def _run_script(connection: AsyncConnection, script: str) -> None:
    """Run SQL that may hold several statements (``CREATE SCHEMA a; CREATE ...``): with
    no arguments asyncpg sends it as one simple query, in one implicit transaction;
    a prepared statement (``exec_driver_sql``) takes only one."""
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    if connection.dialect.driver == "asyncpg" and driver is not None:
        await driver.execute(script)
    else:
        await connection.exec_driver_sql(script)


class WithPrerequisites:
    """A schema source with what must exist before it: ``setup_sql``, then extensions.

    Both are part of the key, so changing either builds a new template.
    """

    def __init__(self, source: Any, extensions: Sequence[str], setup_sql: str | None) -> None:
        self.source = source
        self.extensions = list(extensions)
        self.setup_sql = setup_sql
        self.description = source.description if source is not None else "extensions"

    def key(self) -> str:
        parts = [self.source.key() if self.source is not None else "no schema"]
        if self.setup_sql is not None:
            parts.append(f"setup_sql: {self.setup_sql}")
        parts.extend(f"CREATE EXTENSION {name}" for name in self.extensions)
        return "\n".join(parts)

    async def build(self, url: URL) -> None:
        engine = create_async_engine(url, poolclass=pool.NullPool)
        engine.sync_engine.dialect.e2e_role = "harness"  # type: ignore[attr-defined]
        try:
            async with engine.begin() as connection:
                if self.setup_sql is not None:
                    try:
                        await _run_script(connection, self.setup_sql)
                    except Exception as exc:
                        raise DatabaseSetupError(
                            SCHEMA_FAILED.format(what="E2EConfig.setup_sql", cause=exc)
                        ) from exc
            for name in self.extensions:
                try:
                    async with engine.begin() as connection:
                        await connection.exec_driver_sql(
                            f"CREATE EXTENSION IF NOT EXISTS {_quote(name)}"
                        )
                except Exception as exc:
                    async with engine.connect() as connection:
                        rows = await connection.exec_driver_sql(
                            "SELECT name FROM pg_available_extensions ORDER BY name"
                        )
                        available = ", ".join(row[0] for row in rows) or "none"
                    cause = str(getattr(exc, "orig", exc)).splitlines()[0]
                    raise DatabaseSetupError(
                        EXTENSION_FAILED.format(name=name, cause=cause, available=available)
                    ) from exc
        finally:
            await engine.dispose()
        if self.source is not None:
            await self.source.build(url)


class WithSeedFiles:
    """A schema source whose template also holds the rows of data files (reference
    data for the whole run): loaded after the schema, their names and contents part
    of the key, so a warm start pays nothing for them and an edited file builds a new
    template."""

    def __init__(self, source: Any, paths: Sequence[str | os.PathLike[str]], metadata: Any) -> None:
        self.source = source
        self.paths = [Path(path) for path in paths]
        self.metadata = metadata
        self.description = source.description if source is not None else "seed files"

    def key(self) -> str:
        from fastapi_e2e.database import datafiles

        inner = self.source.key() if self.source is not None else "no schema"
        return f"{inner}\nseed files: {datafiles.digest(self.paths)}"

    async def build(self, url: URL) -> None:
        from fastapi_e2e.database import datafiles

        if self.source is not None:
            await self.source.build(url)
        engine = create_async_engine(url, poolclass=pool.NullPool)
        engine.sync_engine.dialect.e2e_role = "harness"  # type: ignore[attr-defined]
        try:
            async with engine.begin() as connection:
                metadata = await tables_of(connection, self.metadata)
                await connection.run_sync(
                    lambda sync: datafiles.insert_rows(
                        sync,
                        [rows for path in self.paths for rows in datafiles.read(path, metadata)],
                    )
                )
        finally:
            await engine.dispose()


async def tables_of(connection: AsyncConnection, metadata: Any) -> MetaData:
    """The tables data files are loaded through: those of ``metadata`` (or the import
    string naming it), else those reflected from the database (an Alembic project)."""
    if metadata is not None:
        resolved = resolve(metadata, "metadata")
        if isinstance(resolved, MetaData):
            return resolved
    reflected = MetaData()
    await connection.run_sync(reflected.reflect)
    return reflected
