"""Concurrent batches that share idempotency keys in different orders do not deadlock."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx


async def test_batches_sharing_keys_in_opposite_orders_all_succeed(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    keys = [f"key-{i:04d}" for i in range(600)]
    forward = {"jobs": [{"task": "echo", "idempotency_key": k} for k in keys]}
    backward = {"jobs": list(reversed(forward["jobs"]))}
    responses = await asyncio.gather(
        *(client.post("/jobs/batch", json=forward if i % 2 else backward) for i in range(6))
    )
    # Keys are inserted in key order, so the batch that takes the first key creates all 600
    # jobs (201); each of the others finds every key taken, creates nothing and is a replay (200).
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 5 + [201], [r.text for r in responses]
    assert await db.fetchval("SELECT count(*) FROM jobs") == 600
    # Each answer lists, in request order, the one job each key names.
    by_key = {r["idempotency_key"]: r["id"] for r in await db.fetch("SELECT * FROM jobs")}
    for i, response in enumerate(responses):
        order = keys if i % 2 else list(reversed(keys))
        assert response.json()["ids"] == [by_key[k] for k in order]
