"""Driver options: prepared-statement caching on and off (pgbouncer in transaction mode), and
driver options given in the database URL."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from jobqueue.db.engine import asyncpg_dsn, checkout, create_engine, normalise_url
from jobqueue.db.reach import check_database
from jobqueue.db.tables import jobs
from jobqueue.errors import ConfigurationError


async def named_statements_after_use(engine: AsyncEngine) -> int:
    """Run a SQLAlchemy Core read and a hand-written statement on one pooled connection, then
    count the named prepared statements its server session holds (unnamed ones are not
    listed: PostgreSQL manual, "pg_prepared_statements")."""
    try:
        sa_conn, driver = await checkout(engine)
        try:
            await sa_conn.execute(select(jobs.c.id).where(jobs.c.id == 1))
            await driver.fetch("SELECT id FROM jobs WHERE id = $1", 1)
            count: int = await driver.fetchval("SELECT count(*) FROM pg_prepared_statements")
            return count
        finally:
            await sa_conn.close()
    finally:
        await engine.dispose()


async def test_engine_default_caches_named_prepared_statements(database_url: str) -> None:
    # The control: without it the two tests below would pass however the engine was built.
    assert await named_statements_after_use(create_engine(database_url, 1)) >= 3


async def test_engine_statement_cache_off_prepares_no_named_statement(database_url: str) -> None:
    engine = create_engine(database_url, 1, statement_cache=False)
    assert await named_statements_after_use(engine) == 0


async def test_engine_url_statement_cache_size_zero_prepares_no_named_statement(
    database_url: str,
) -> None:
    # Was a TypeError at the first connection: SQLAlchemy passed "0" (a string) to asyncpg.
    engine = create_engine(f"{database_url}?statement_cache_size=0", 1)
    assert await named_statements_after_use(engine) == 0


@pytest.mark.parametrize(
    "query",
    ["statement_cache_size=none", "statement_cache_size=-1", "command_timeout=soon"],
)
def test_normalise_url_bad_driver_option_names_it(query: str) -> None:
    name = query.partition("=")[0]
    with pytest.raises(ConfigurationError, match=rf"\?{name}= must be one non-negative"):
        normalise_url(f"postgresql://u@h:5432/db?{query}")


def test_asyncpg_dsn_drops_driver_options_keeps_the_rest() -> None:
    # asyncpg would send an unknown query parameter to the server as a setting, which
    # PostgreSQL refuses ("unrecognized configuration parameter").
    url = (
        "postgresql+asyncpg://u:p@h:5432/db?statement_cache_size=0"
        "&prepared_statement_cache_size=0&sslmode=disable"
    )
    assert asyncpg_dsn(url) == "postgresql://u:p@h:5432/db?sslmode=disable"


async def test_engine_url_with_libpq_parameters_connects_and_names_itself(
    database_url: str,
) -> None:
    # docs/deploy.md asks for ?sslmode=… on a managed PostgreSQL: SQLAlchemy passed it to
    # asyncpg.connect as a keyword it does not know (a TypeError at start).
    url = f"{database_url}?sslmode=disable&connect_timeout=5&application_name=billing-jobs"
    await asyncio.to_thread(check_database, url)
    engine = create_engine(url, 1, 5.0)
    try:
        sa_conn, driver = await checkout(engine)
        try:
            name = await driver.fetchval("SELECT current_setting('application_name')")
        finally:
            await sa_conn.close()
    finally:
        await engine.dispose()
    assert name == "billing-jobs"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("sslmode=sometimes", r"\?sslmode= must be one of allow, disable"),
        ("connect_timeout=soon", r"\?connect_timeout= must be a positive number"),
        ("connect_timeout=0", r"\?connect_timeout= must be a positive number"),
    ],
)
def test_normalise_url_bad_libpq_parameter_names_it(query: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        normalise_url(f"postgresql://u@h:5432/db?{query}")
