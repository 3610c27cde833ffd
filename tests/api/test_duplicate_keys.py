"""A JSON object that names a key twice is refused with a 400 naming the key and the object's
place (RFC 8259, section 4 leaves the choice to the parser; ``json.loads`` kept the last value
silently). Every refused request creates nothing."""

from __future__ import annotations

import asyncpg
import httpx
import pytest

JSON = {"content-type": "application/json"}
SEND_ONCE = "send each key once (RFC 8259, section 4: the names within an object should be unique)"


@pytest.mark.parametrize(
    ("path", "body", "key", "place"),
    [
        ("/jobs", b'{"task": "echo", "task": "nope"}', "task", "$"),
        ("/jobs", b'{"task": "echo", "task": "echo"}', "task", "$"),
        ("/jobs", b'{"payload": {"a": 1, "b": {"c": 1, "c": 2}}}', "c", "$.payload.b"),
        ("/jobs/batch", b'{"jobs": [{}], "jobs": [{}]}', "jobs", "$"),
        ("/jobs/batch", b'{"jobs": [{}, {}, {"task": "echo", "task": "fail"}]}', "task",
         "$.jobs[2]"),
        ("/jobs/batch", b'{"jobs": [{}, {"payload": {"a b": {"x": 1, "x": 2}}}]}', "x",
         '$.jobs[1].payload["a b"]'),
    ],
)  # fmt: skip
async def test_create_job_duplicate_key_is_400_naming_key_and_place(
    client: httpx.AsyncClient,
    db: asyncpg.Connection,
    path: str,
    body: bytes,
    key: str,
    place: str,
) -> None:
    response = await client.post(path, content=body, headers=JSON)
    assert response.status_code == 400
    assert response.json() == {
        "detail": f"duplicate key {key!r} in the object at {place}: {SEND_ONCE}"
    }
    assert await db.fetchval("SELECT count(*) FROM jobs") == 0


async def test_batch_first_duplicate_in_document_order_is_named(
    client: httpx.AsyncClient,
) -> None:
    body = b'{"jobs": [{"payload": {"a": 1, "a": 2}}, {"task": "echo", "task": "echo"}]}'
    response = await client.post("/jobs/batch", content=body, headers=JSON)
    assert response.json()["detail"].startswith(
        "duplicate key 'a' in the object at $.jobs[0].payload:"
    )


async def test_create_job_long_duplicate_key_is_quoted_to_100_characters(
    client: httpx.AsyncClient,
) -> None:
    key = "k" * 5000
    body = f'{{"payload": {{"{key}": 1, "{key}": 2}}}}'.encode()
    response = await client.post("/jobs", content=body, headers=JSON)
    assert response.status_code == 400
    assert response.json() == {
        "detail": f"duplicate key '{'k' * 99}…' in the object at $.payload: {SEND_ONCE}"
    }


async def test_create_job_duplicate_key_under_a_long_key_names_its_first_99_characters(
    client: httpx.AsyncClient,
) -> None:
    body = '{"payload": {"' + "k" * 300 + '": {"z": 1, "z": 2}}}'
    response = await client.post("/jobs", content=body.encode(), headers=JSON)
    assert response.status_code == 400
    place = '$.payload["' + "k" * 99 + '…"]'
    assert response.json() == {"detail": f"duplicate key 'z' in the object at {place}: {SEND_ONCE}"}


async def test_create_job_duplicate_key_150_objects_deep_names_both_ends_of_the_place(
    client: httpx.AsyncClient,
) -> None:
    body = '{"payload": ' + '{"a": ' * 150 + '{"z": 1, "z": 2}' + "}" * 150 + "}"
    response = await client.post("/jobs", content=body.encode(), headers=JSON)
    assert response.status_code == 400
    place = "$.payload" + ".a" * 150
    assert response.json() == {
        "detail": f"duplicate key 'z' in the object at {place[:100]}…{place[-99:]}: {SEND_ONCE}"
    }


async def test_create_job_same_key_in_different_objects_is_201(
    client: httpx.AsyncClient,
) -> None:
    body = b'{"task": "echo", "payload": {"task": "x", "payload": {"task": "y"}}}'
    response = await client.post("/jobs", content=body, headers=JSON)
    assert response.status_code == 201, response.text
    assert response.json()["payload"] == {"task": "x", "payload": {"task": "y"}}


async def test_create_job_invalid_json_after_a_duplicate_is_400_invalid_json(
    client: httpx.AsyncClient,
) -> None:
    # The syntax error wins, as before: the body is not JSON at all.
    body = b'{"payload": {"a": 1, "a": 2}, "task": }'
    response = await client.post("/jobs", content=body, headers=JSON)
    assert response.status_code == 400
    assert response.json() == {"detail": "the request body is not valid JSON: Expecting value"}


async def test_dashboard_api_duplicate_key_is_400(client: httpx.AsyncClient) -> None:
    body = b'{"task": "echo", "task": "nope"}'
    response = await client.post("/ui/api/jobs", content=body, headers=JSON)
    assert response.status_code == 400
    assert response.json()["detail"].startswith("duplicate key 'task' in the object at $:")
