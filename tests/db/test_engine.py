"""The engine's connections: the JSON contract the queries rely on, set up in ``db/``."""

from __future__ import annotations

from sqlalchemy import cast, literal, select
from sqlalchemy.dialects.postgresql import JSONB

from jobqueue.db.engine import connect, create_engine, read

BIG = 9007199254740993  # 2**53 + 1: a float would lose it


async def test_engine_jsonb_results_are_decoded_exactly_on_both_paths(database_url: str) -> None:
    engine = create_engine(database_url, 1)
    try:
        async with connect(engine) as conn:
            raw = await conn.fetchval("SELECT $1::text::jsonb", f'{{"n": {BIG}, "s": "é"}}')
        async with read(engine) as sa:
            core = await sa.scalar(select(cast(literal(f'{{"n": {BIG}}}'), JSONB)))
            bound = await sa.scalar(select(literal({"n": BIG}, JSONB)))
    finally:
        await engine.dispose()
    assert raw == {"n": BIG, "s": "é"}
    assert core == {"n": BIG}
    assert bound == {"n": BIG}
