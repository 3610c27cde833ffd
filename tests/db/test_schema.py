"""The schema has one source: the migrations build exactly ``db/tables.py``, and the CHECK
constraints hold exactly the values of the enums."""

from __future__ import annotations

import re
from typing import Any

import asyncpg
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import CheckConstraint
from sqlalchemy.engine import Connection

from jobqueue.db.engine import create_engine
from jobqueue.db.tables import metadata
from jobqueue.jobs import RECORDED_OUTCOMES, JobStatus


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "compare_server_default": True}
    )
    return list(compare_metadata(context, metadata))


async def test_migrations_build_exactly_the_tables_of_tables_py(database_url: str) -> None:
    engine = create_engine(database_url, 1)
    try:
        async with engine.connect() as conn:
            differences = await conn.run_sync(_differences)
    finally:
        await engine.dispose()
    assert differences == []


async def test_check_constraints_have_the_names_and_texts_of_tables_py(
    db: asyncpg.Connection,
) -> None:
    declared = {
        str(constraint.name)
        for table in metadata.tables.values()
        for constraint in table.constraints
        if isinstance(constraint, CheckConstraint)
    }
    rows = await db.fetch(
        "SELECT conname FROM pg_constraint WHERE contype = 'c' AND conrelid = ANY($1::regclass[])",
        list(metadata.tables),
    )
    assert {row["conname"] for row in rows} == declared


async def _check_values(db: asyncpg.Connection, name: str) -> list[str]:
    definition: str = await db.fetchval(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = $1", name
    )
    return re.findall(r"'([a-z_]+)'::text", definition)


async def test_status_check_constraint_equals_job_status(db: asyncpg.Connection) -> None:
    assert await _check_values(db, "ck_jobs_status") == [status.value for status in JobStatus]


async def test_outcome_check_constraint_equals_recorded_outcomes(db: asyncpg.Connection) -> None:
    assert await _check_values(db, "ck_job_attempts_outcome") == [
        outcome.value for outcome in RECORDED_OUTCOMES
    ]
