"""Alembic environment: runs migrations on an async (asyncpg) engine.

Every migration runs in one transaction that first takes a transaction-level advisory lock
(``pg_advisory_xact_lock``, PostgreSQL manual, "Advisory Locks"), so replicas that start together
migrate one after the other: the second waits, then finds the schema current and does nothing.
The lock ends with the transaction, commit or rollback. A session-level lock
(``pg_advisory_lock`` … ``pg_advisory_unlock``) would break behind pgbouncer in transaction mode:
the lock and the unlock can reach different server connections, and the lock then stays held by
a server connection that pgbouncer keeps open, blocking the next migration.
"""

import asyncio

from alembic import context
from sqlalchemy import pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from jobqueue.db.engine import engine_arguments
from jobqueue.db.migrations import STATEMENT_CACHE_ATTRIBUTE
from jobqueue.db.tables import metadata

# Any constant works; this one spells "jobq" in ASCII.
MIGRATION_LOCK_KEY = 0x6A6F6271

config = context.config
target_metadata = metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        # Before alembic reads the current revision, in the same transaction.
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        context.run_migrations()


async def _run_async() -> None:
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("sqlalchemy.url is not set: set JOBQUEUE_DATABASE_URL")
    statement_cache = bool(config.attributes.get(STATEMENT_CACHE_ATTRIBUTE, True))
    clean_url, connect_args = engine_arguments(url, statement_cache)
    engine = create_async_engine(clean_url, poolclass=pool.NullPool, connect_args=connect_args)
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
