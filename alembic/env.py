"""Alembic environment: runs migrations on an async (asyncpg) engine.

Migrations hold a PostgreSQL advisory lock (pg_advisory_lock, see the PostgreSQL manual,
"Advisory Locks") for their whole run, so replicas that start together migrate one after the
other: the second finds the schema current and does nothing.
"""

import asyncio

from alembic import context
from sqlalchemy import pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from jobqueue.db.tables import metadata

# Any constant works; this one spells "jobq" in ASCII.
MIGRATION_LOCK_KEY = 0x6A6F6271

config = context.config
target_metadata = metadata


def _run(connection: Connection) -> None:
    # A session-level lock outlives the transaction that takes it; commit so that the migration
    # runs in a transaction of its own.
    connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    connection.commit()
    try:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
    finally:
        if connection.in_transaction():
            connection.rollback()
        connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
        connection.commit()


async def _run_async() -> None:
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("sqlalchemy.url is not set: set JOBQUEUE_DATABASE_URL")
    engine = create_async_engine(url, poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_async())
