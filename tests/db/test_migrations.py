"""Migrations: idempotent, and they create what the claim path relies on."""

from __future__ import annotations

import asyncpg
from sqlalchemy.engine import make_url

from jobqueue.db.migrations import head_revision, upgrade_to_head
from jobqueue.leases._statements import CLAIM
from tests.helpers import one


async def test_upgrade_on_migrated_database_is_noop(
    database_url: str, db: asyncpg.Connection
) -> None:
    import asyncio

    await db.execute("INSERT INTO jobs (task) VALUES ('echo')")
    await asyncio.to_thread(upgrade_to_head, database_url)
    await asyncio.to_thread(upgrade_to_head, database_url)
    assert await db.fetchval("SELECT version_num FROM alembic_version") == head_revision()
    assert await db.fetchval("SELECT count(*) FROM jobs") == 1


async def test_migration_creates_partial_claim_index_and_storage_settings(
    db: asyncpg.Connection, database_url: str
) -> None:
    indexdef = await db.fetchval(
        "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_jobs_claim'"
    )
    assert "(queue, priority DESC, run_at, id) WHERE (status = 'todo'::text)" in indexdef
    options = await db.fetchval("SELECT reloptions FROM pg_class WHERE relname = 'jobs'")
    assert "fillfactor=70" in options
    assert make_url(database_url).get_backend_name() == "postgresql"


async def test_claim_query_walks_claim_index_without_sort(db: asyncpg.Connection) -> None:
    await db.execute(
        "INSERT INTO jobs (task, status) SELECT 'echo', 'done' FROM generate_series(1, 20000)"
    )
    await db.execute("INSERT INTO jobs (task) SELECT 'echo' FROM generate_series(1, 20000)")
    await db.execute("ANALYZE jobs")
    # The statement the claim really runs (leases/), not a copy of it.
    rows = await db.fetch(f"EXPLAIN {CLAIM}", "default", 10, "w", 30.0, ["echo", "other"])
    plan = "\n".join(row[0] for row in rows)
    assert "Index Scan using ix_jobs_claim" in plan
    assert "Sort" not in plan


async def test_list_failed_jobs_walks_partial_status_index(db: asyncpg.Connection) -> None:
    await db.execute(
        "INSERT INTO jobs (task, status) SELECT 'echo', 'done' FROM generate_series(1, 20000)"
    )
    await db.execute(
        "INSERT INTO jobs (task, status) SELECT 'echo', 'failed' FROM generate_series(1, 500)"
    )
    await db.execute("ANALYZE jobs")
    rows = await db.fetch(
        "EXPLAIN SELECT id FROM jobs WHERE status = 'failed' ORDER BY id DESC LIMIT 50"
    )
    plan = "\n".join(row[0] for row in rows)
    assert "ix_jobs_status_id" in plan
    assert "Sort" not in plan


async def test_heartbeat_update_is_hot(db: asyncpg.Connection) -> None:
    await db.execute(
        "INSERT INTO jobs (task, status, lease_expires_at) VALUES ('echo', 'in_progress', now())"
    )
    async with db.transaction():
        for _ in range(20):
            await db.execute("UPDATE jobs SET lease_expires_at = now() + interval '30 s'")
        counts = await one(
            db,
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relname = 'jobs'",
        )
    assert tuple(counts) == (20, 20)


async def test_upgrade_url_statement_cache_size_zero_runs(
    database_url: str, db: asyncpg.Connection
) -> None:
    # Was a TypeError: alembic's engine passed the URL's "0" (a string) on to asyncpg.
    import asyncio

    await asyncio.to_thread(upgrade_to_head, f"{database_url}?statement_cache_size=0", False)
    assert await db.fetchval("SELECT version_num FROM alembic_version") == head_revision()


async def test_migration_0004_backfills_sizes_of_stored_payloads_and_results(
    database_url: str, db: asyncpg.Connection
) -> None:
    import asyncio

    from alembic import command

    from jobqueue.db.migrations import alembic_config

    config = alembic_config(database_url)
    await asyncio.to_thread(command.downgrade, config, "0003")
    await db.execute(
        "INSERT INTO jobs (task, payload, result) VALUES ('echo', $1, $2), ('echo', '{}', NULL)",
        '{"é": [1, 2]}',
        '{"ok": true}',
    )
    await asyncio.to_thread(upgrade_to_head, database_url)
    rows = await db.fetch("SELECT payload_bytes, result_bytes FROM jobs ORDER BY id")
    # jsonb's text form: '{"é": [1, 2]}' is 14 bytes, '{"ok": true}' 12, '{}' 2; no result 0.
    assert [tuple(row) for row in rows] == [(14, 12), (2, 0)]
