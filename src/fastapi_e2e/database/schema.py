"""Build the schema into the template database: metadata create_all or Alembic to head."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, pool
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import create_async_engine

from fastapi_e2e.errors import SCHEMA_FAILED, ConfigError, DatabaseSetupError


async def create_all(url: URL, metadata: Any) -> None:
    """Create every table of ``metadata`` in the database at ``url``."""
    if not isinstance(metadata, MetaData):
        raise ConfigError(
            f"E2EConfig.metadata resolved to {metadata!r}, which is not a SQLAlchemy "
            "MetaData. Point it at your declarative base's metadata, e.g. "
            "'myapp.models:Base.metadata'."
        )
    engine = create_async_engine(url, poolclass=pool.NullPool)
    try:
        async with engine.begin() as connection:
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
    try:
        await asyncio.to_thread(command.upgrade, config, "head")
    except Exception as exc:
        raise DatabaseSetupError(
            SCHEMA_FAILED.format(what=f"alembic upgrade head ({ini})", cause=exc)
        ) from exc
