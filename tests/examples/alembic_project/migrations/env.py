"""The async template's env.py, building its URL from the app's settings."""

import asyncio

from alembic import context
from notes_app import Base, settings
from sqlalchemy import pool
from sqlalchemy.ext.asyncio import create_async_engine

target_metadata = Base.metadata


def do_run_migrations(connection):
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations():
    connectable = create_async_engine(settings.database_url, poolclass=pool.NullPool)
    async with connectable.connect() as connection:
        await connection.run_sync(do_run_migrations)
    await connectable.dispose()


asyncio.run(run_async_migrations())
