"""Strict input: booleans and strings are not numbers, ``run_at`` is an RFC 3339 date-time with
an offset, bodies are UTF-8 JSON, and URL numbers are decimal digits. Each refusal is a 4xx
that says what to send, and creates nothing."""

from __future__ import annotations

import codecs
from typing import Any

import asyncpg
import httpx
import pytest

JSON = {"content-type": "application/json"}
SEND_UTF8 = "send the JSON encoded as UTF-8 without a byte order mark (RFC 8259, section 8.1)"
RFC3339 = (
    "give an RFC 3339 date-time with a timezone offset, e.g. 2026-11-29T12:00:00Z or "
    "2026-11-29T13:00:00+01:00"
)


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"priority": True}, "priority", "Input should be a valid integer, not a boolean"),
        ({"priority": 1.0}, "priority", "Input should be a valid integer, not a number with a "
         "fraction"),
        ({"priority": "1"}, "priority", "Input should be a valid integer, not a string"),
        ({"max_attempts": False}, "max_attempts", "Input should be a valid integer, not a "
         "boolean"),
        ({"timeout_seconds": True}, "timeout_seconds", "Input should be a valid number, not a "
         "boolean"),
        ({"delay_seconds": "5"}, "delay_seconds", "Input should be a valid number, not a string"),
        ({"task": 1}, "task", "Input should be a valid string, not an integer"),
        ({"run_at": 1_764_417_600}, "run_at", f"{RFC3339} (got a number)"),
        ({"run_at": "1764417600"}, "run_at", f"{RFC3339} (got '1764417600')"),
        ({"run_at": "2026-11-29"}, "run_at", f"{RFC3339} (got '2026-11-29')"),
        ({"run_at": True}, "run_at", f"{RFC3339} (got a boolean)"),
        ({"run_at": "2026-11-29T12:00:00"}, "run_at",
         "add a timezone offset (Z or +hh:mm), e.g. 2026-11-29T12:00:00Z "
         "(got 2026-11-29T12:00:00)"),
    ],
)  # fmt: skip
async def test_create_job_wrong_type_is_422_saying_what_to_send(
    client: httpx.AsyncClient,
    db: asyncpg.Connection,
    body: dict[str, Any],
    field: str,
    message: str,
) -> None:
    response = await client.post("/jobs", json=body)
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert (error["loc"], error["msg"]) == (["body", field], message)
    assert await db.fetchval("SELECT count(*) FROM jobs") == 0


async def test_create_job_integer_seconds_are_accepted(client: httpx.AsyncClient) -> None:
    body = {"timeout_seconds": 5, "delay_seconds": 60, "run_at": None, "priority": -3}
    response = await client.post("/jobs", json=body)
    assert response.status_code == 201, response.text
    job = response.json()
    assert (job["timeout_seconds"], job["priority"], job["status"]) == (5.0, -3, "todo")


@pytest.mark.parametrize(
    "run_at", ["2030-01-01T09:00:00Z", "2030-01-01t09:00:00.25z", "2030-01-01 10:00:00+01:00"]
)
async def test_create_job_run_at_rfc3339_forms_are_accepted(
    client: httpx.AsyncClient, run_at: str
) -> None:
    response = await client.post("/jobs", json={"run_at": run_at})
    assert response.status_code == 201, response.text
    assert response.json()["run_at"].startswith("2030-01-01T09:00:00")


async def test_batch_boolean_priority_is_422_naming_the_item(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    response = await client.post("/jobs/batch", json={"jobs": [{}, {"priority": True}]})
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "jobs", 1, "priority"]
    assert error["msg"] == "Input should be a valid integer, not a boolean"
    assert await db.fetchval("SELECT count(*) FROM jobs") == 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param('{"task": "echo"}'.encode("utf-16"),
                     "the request body looks like UTF-16 or UTF-32 (it holds NUL bytes)",
                     id="utf-16-bom"),
        pytest.param('{"task": "echo"}'.encode("utf-16-le"),
                     "the request body looks like UTF-16 or UTF-32 (it holds NUL bytes)",
                     id="utf-16-le"),
        pytest.param('{"task": "echo"}'.encode("utf-32-be"),
                     "the request body looks like UTF-16 or UTF-32 (it holds NUL bytes)",
                     id="utf-32-be"),
        pytest.param(codecs.BOM_UTF8 + b'{"task": "echo"}',
                     "the request body starts with a UTF-8 byte order mark", id="utf-8-bom"),
        pytest.param('{"description": "café"}'.encode("latin-1"),
                     "the request body is not valid UTF-8 (byte 20)", id="latin-1"),
        pytest.param(b'{"description": "\xed\xa0\x80"}',
                     "the request body is not valid UTF-8 (byte 17)", id="encoded-surrogate"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("path", ["/jobs", "/jobs/batch"])
async def test_create_job_body_not_utf8_is_400_saying_send_utf8(
    client: httpx.AsyncClient, db: asyncpg.Connection, body: bytes, message: str, path: str
) -> None:
    response = await client.post(path, content=body, headers=JSON)
    assert response.status_code == 400
    assert response.json() == {"detail": f"{message}: {SEND_UTF8}"}
    assert await db.fetchval("SELECT count(*) FROM jobs") == 0


async def test_create_job_utf8_non_ascii_body_is_accepted(client: httpx.AsyncClient) -> None:
    body = '{"description": "café ☕ 𝄞"}'.encode()
    response = await client.post("/jobs", content=body, headers=JSON)
    assert response.status_code == 201, response.text
    assert response.json()["description"] == "café ☕ 𝄞"


@pytest.mark.parametrize(
    ("path", "params", "loc", "message"),
    [
        ("/jobs", {"limit": "1.0"}, ["query", "limit"], "give a whole number in decimal digits, "
         "e.g. 42"),
        ("/jobs", {"limit": "+5"}, ["query", "limit"], "give a whole number in decimal digits, "
         "e.g. 42"),
        ("/jobs", {"limit": "5_0"}, ["query", "limit"], "give a whole number in decimal digits, "
         "e.g. 42"),
        ("/jobs", {"limit": " 5"}, ["query", "limit"], "give a whole number in decimal digits, "
         "e.g. 42"),
        ("/jobs", {"limit": "true"}, ["query", "limit"], "give a whole number in decimal digits, "
         "e.g. 42"),
        ("/jobs/1", {"wait_seconds": "1e1"}, ["query", "wait_seconds"],
         "give seconds in decimal digits, e.g. 5 or 2.5"),
        ("/jobs/1", {"wait_seconds": "1_0"}, ["query", "wait_seconds"],
         "give seconds in decimal digits, e.g. 5 or 2.5"),
    ],
)  # fmt: skip
async def test_url_numbers_not_in_decimal_digits_are_422(
    client: httpx.AsyncClient,
    path: str,
    params: dict[str, str],
    loc: list[str],
    message: str,
) -> None:
    response = await client.get(path, params=params)
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert (error["loc"], error["msg"]) == (loc, message)


@pytest.mark.parametrize("path", ["/jobs/1_0", "/jobs/1.0", "/jobs/²", "/jobs/-1", "/jobs/0x1"])
async def test_job_path_not_in_decimal_digits_is_no_job_route(
    client: httpx.AsyncClient, path: str
) -> None:
    # Job ids in paths are ASCII digits: anything else matches no job route (404), never a 500.
    response = await client.get(path)
    assert response.status_code == 404, response.text
    assert response.json() == {"detail": "Not Found"}


async def test_create_job_binary_body_not_declared_json_is_415(client: httpx.AsyncClient) -> None:
    body = '{"task": "echo"}'.encode("utf-16")
    response = await client.post(
        "/jobs", content=body, headers={"content-type": "application/octet-stream"}
    )
    assert response.status_code == 415


async def test_create_job_utf16_body_declared_as_json_with_charset_is_400(
    client: httpx.AsyncClient,
) -> None:
    body = '{"task": "echo"}'.encode("utf-16")
    response = await client.post(
        "/jobs", content=body, headers={"content-type": "application/json; charset=utf-16"}
    )
    assert response.status_code == 400
    assert response.json()["detail"].endswith(SEND_UTF8)
