"""A schema violation's 422 is bounded whatever the request: at most 20 errors listed (with the
total and a note when there were more), no input echoed, and the client's text in ``loc`` cut.
Every refused request creates nothing."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
import pytest

MIB = 1_048_576
TYPE_ERROR = "Input should be a valid integer, not a string"


def bad_priorities(count: int) -> dict[str, Any]:
    """A batch of ``count`` jobs, each with a string for its integer ``priority``."""
    return {"jobs": [{"priority": "high"}] * count}


async def test_batch_10000_bad_items_is_422_of_a_few_kb_listing_20_and_the_count(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    response = await client.post("/jobs/batch", json=bad_priorities(10_000))
    assert response.status_code == 422
    body = response.json()
    assert body["error_count"] == 10_000
    assert (
        body["note"] == "only the first 20 of 10000 errors are listed; the other 9980 were left out"
    )
    assert body["detail"] == [
        {"type": "int_type", "loc": ["body", "jobs", i, "priority"], "msg": TYPE_ERROR}
        for i in range(20)
    ]
    assert len(response.content) < 3_000  # it was 1.1 MB: every error listed
    assert await db.fetchval("SELECT count(*) FROM jobs") == 0


async def test_batch_20_bad_items_is_422_listing_all_without_count(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/jobs/batch", json=bad_priorities(20))
    assert response.status_code == 422
    body = response.json()
    assert list(body) == ["detail"]  # the shape FastAPI gives, when nothing was left out
    assert [error["loc"][2] for error in body["detail"]] == list(range(20))


async def test_batch_21_bad_items_is_422_listing_20_and_the_count(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/jobs/batch", json=bad_priorities(21))
    assert response.status_code == 422
    body = response.json()
    assert (len(body["detail"]), body["error_count"]) == (20, 21)
    assert body["note"] == "only the first 20 of 21 errors are listed; the other 1 were left out"


@pytest.mark.parametrize(
    ("field", "error"),
    [
        ("priority", {"type": "int_type", "loc": ["body", "priority"], "msg": TYPE_ERROR}),
        (
            "description",
            {
                "type": "string_too_long",
                "loc": ["body", "description"],
                "msg": "String should have at most 10000 characters",
                "ctx": {"max_length": 10000},
            },
        ),
        (
            "run_at",
            {
                "type": "rfc3339",
                "loc": ["body", "run_at"],
                "msg": "give an RFC 3339 date-time with a timezone offset, e.g. "
                "2026-11-29T12:00:00Z or 2026-11-29T13:00:00+01:00 (got '" + "x" * 39 + ")",
                "ctx": {"got": "'" + "x" * 39},
            },
        ),
    ],
)
async def test_create_job_1mib_string_in_wrong_field_is_422_without_it(
    client: httpx.AsyncClient, db: asyncpg.Connection, field: str, error: dict[str, Any]
) -> None:
    response = await client.post("/jobs", json={field: "x" * MIB})
    assert response.status_code == 422
    assert response.json() == {"detail": [error]}
    assert len(response.content) < 500
    assert await db.fetchval("SELECT count(*) FROM jobs") == 0


async def test_create_job_1mib_unknown_field_name_is_422_naming_its_first_99_characters(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    response = await client.post("/jobs", json={"y" * MIB: 1})
    assert response.status_code == 422
    assert response.json() == {
        "detail": [
            {
                "type": "extra_forbidden",
                "loc": ["body", "y" * 99 + "…"],
                "msg": "Extra inputs are not permitted",
            }
        ]
    }
    assert await db.fetchval("SELECT count(*) FROM jobs") == 0


async def test_batch_10000_unknown_1kib_field_names_is_422_of_a_few_kb(
    client: httpx.AsyncClient,
) -> None:
    jobs = [{f"{i:04d}" + "z" * 1020: 1} for i in range(10_000)]  # a 10 MB body of bad names
    response = await client.post("/jobs/batch", json={"jobs": jobs})
    assert response.status_code == 422
    body = response.json()
    assert (body["error_count"], len(body["detail"])) == (10_000, 20)
    assert body["detail"][3]["loc"] == ["body", "jobs", 3, "0003" + "z" * 95 + "…"]
    assert len(response.content) < 5_000
