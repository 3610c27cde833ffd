"""Faults a fresh user found by attacking the API: each one is a 4xx now, and creates nothing."""

from __future__ import annotations

import asyncpg
import httpx
import pytest
from typer.testing import CliRunner

from jobqueue.cli import app as cli

JSON = {"content-type": "application/json"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"payload": {"x": "\\ud800"}}', "lone surrogate"),
        (b'{"payload": {"\\udfff": 1}}', "lone surrogate"),
        (b'{"payload": {"x": ["ok", "\\udc00"]}}', "lone surrogate"),
        (b'{"description": "\\ud800"}', "description"),
    ],
)
async def test_create_job_lone_surrogate_is_422(
    client: httpx.AsyncClient, db: asyncpg.Connection, body: bytes, message: str
) -> None:
    response = await client.post("/jobs", content=body, headers=JSON)
    assert response.status_code == 422, response.text
    assert message in response.text
    assert await db.fetchval("SELECT count(*) FROM jobs") == 0


async def test_batch_lone_surrogate_is_422_naming_index(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    body = b'{"jobs": [{}, {"payload": {"x": "\\ud800"}}]}'
    response = await client.post("/jobs/batch", content=body, headers=JSON)
    assert response.status_code == 422
    assert response.json()["detail"].startswith("jobs[1]: payload contains a lone surrogate")
    assert await db.fetchval("SELECT count(*) FROM jobs") == 0


@pytest.mark.parametrize(
    "run_at", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "1969-12-31T23:59:59Z"]
)
async def test_create_job_run_at_out_of_range_is_422(
    client: httpx.AsyncClient, db: asyncpg.Connection, run_at: str
) -> None:
    response = await client.post("/jobs", json={"run_at": run_at})
    assert response.status_code == 422
    assert response.json() == {"detail": "run_at must lie between 1970-01-01 and 9999-01-01 UTC"}
    assert await db.fetchval("SELECT count(*) FROM jobs") == 0


@pytest.mark.parametrize(
    "cursor",
    ["aWQ6OTk5OTk5OTk5OTk5OTk5OTk5OTk5", "aWQ6OTIyMzM3MjAzNjg1NDc3NTgwOA", "aWQ6MA"],
)
async def test_list_jobs_cursor_outside_bigint_is_400(
    client: httpx.AsyncClient, cursor: str
) -> None:
    response = await client.get("/jobs", params={"cursor": cursor})
    assert response.status_code == 400
    assert response.json() == {
        "detail": "cursor is not valid: pass the next_cursor value of a previous page"
    }


@pytest.mark.parametrize("name", ["queue", "task"])
async def test_list_jobs_nul_in_filter_is_422(client: httpx.AsyncClient, name: str) -> None:
    response = await client.get("/jobs", params={name: "a\x00b"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", name]


async def test_batch_idempotency_key_header_is_422(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    response = await client.post(
        "/jobs/batch", json={"jobs": [{}]}, headers={"Idempotency-Key": "batch-h"}
    )
    assert response.status_code == 422
    assert "set idempotency_key on each job" in response.json()["detail"]
    assert await db.fetchval("SELECT count(*) FROM jobs") == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"delay_seconds": NaN}', "delay_seconds"),
        (b'{"delay_seconds": Infinity}', "delay_seconds"),
        (b'{"timeout_seconds": NaN}', "timeout_seconds"),
    ],
)
async def test_create_job_non_finite_number_says_finite(
    client: httpx.AsyncClient, body: bytes, field: str
) -> None:
    response = await client.post("/jobs", content=body, headers=JSON)
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert (error["loc"], error["msg"]) == (["body", field], "Input should be a finite number")


async def test_get_job_wait_seconds_nan_is_422(client: httpx.AsyncClient) -> None:
    response = await client.get("/jobs/1", params={"wait_seconds": "nan"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["msg"] == "give seconds in decimal digits, e.g. 5 or 2.5"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"task": "sleep", "payload": {"seconds": -1}}, "payload for task 'sleep': seconds must"),
        ({"task": "sleep", "payload": {"seconds": "x"}}, "payload for task 'sleep': seconds must"),
        ({"task": "http", "payload": {}}, "payload for task 'http': "),
        ({"task": "http", "payload": {"url": "ftp://x/y"}}, "payload for task 'http': "),
        (
            {"task": "http", "payload": {"url": "https://x/", "method": "BOGUS"}},
            "payload for task 'http': ",
        ),
    ],
)
async def test_create_job_builtin_task_bad_payload_is_422_at_enqueue(
    start_app: object, db: asyncpg.Connection, body: dict[str, object], message: str
) -> None:
    from jobqueue.api.app import create_app  # noqa: F401  (the default registry has "http")

    client = await start_app(workers_enabled=False)  # type: ignore[operator]
    # The test registry has no "http" task; register the real one for this check.
    from jobqueue.api.app import with_http_task
    from jobqueue.settings import Settings

    registry = client.runtime.service.registry
    if "http" not in registry:
        registry.tasks.update(with_http_task(registry, Settings(_env_file=None)).tasks)
    response = await client.post("/jobs", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith(message)
    assert await db.fetchval("SELECT count(*) FROM jobs") == 0


async def test_create_job_too_deep_json_says_why(client: httpx.AsyncClient) -> None:
    body = b'{"payload": {"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}"
    response = await client.post("/jobs", content=body, headers=JSON)
    assert response.status_code == 400
    assert "nest deeper" in response.json()["detail"]


@pytest.mark.parametrize(
    ("option", "bound"), [("--delay-seconds", "316224000"), ("--timeout-seconds", "86400")]
)
@pytest.mark.parametrize("value", ["nan", "inf"])
def test_cli_enqueue_non_finite_number_exits_2_with_message(
    option: str, bound: str, value: str
) -> None:
    # The option's range (typer's max, the API's bound) refuses NaN and infinity before the
    # command runs: a usage error naming the option and its bound, never a request.
    result = CliRunner().invoke(cli, ["enqueue", "echo", option, value, "--url", "http://x"])
    assert result.exit_code == 2
    assert f"Invalid value for '{option}': Input should be less than or equal to {bound}" in (
        " ".join(result.output.replace("│", " ").split())
    )


async def test_create_job_invalid_utf8_body_is_400_saying_so(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/jobs", content=b'{"task": "echo", "description": "\xff\xfe"}', headers=JSON
    )
    assert response.status_code == 400
    assert response.json() == {
        "detail": "the request body is not valid UTF-8 (byte 33): send the JSON encoded as "
        "UTF-8 without a byte order mark (RFC 8259, section 8.1)"
    }


@pytest.mark.parametrize(
    "content_type", ["text/json", "application/x-json", "application/jsonx", "application/json-seq"]
)
async def test_create_job_json_like_content_type_is_415_not_422(
    client: httpx.AsyncClient, db: asyncpg.Connection, content_type: str
) -> None:
    # FastAPI parses application/json and application/*+json only; these bodies were objects,
    # and the answer said "must be a JSON object" (fresh-user finding).
    response = await client.post(
        "/jobs", content=b'{"task": "echo"}', headers={"content-type": content_type}
    )
    assert response.status_code == 415, response.text
    assert "Content-Type: application/json" in response.json()["detail"]
    assert await db.fetchval("SELECT count(*) FROM jobs") == 0


@pytest.mark.parametrize("encoding", ["gzip", "br", "deflate", "GZIP"])
async def test_create_job_with_a_content_encoding_is_415(
    client: httpx.AsyncClient, db: asyncpg.Connection, encoding: str
) -> None:
    # A gzip body was answered "looks like UTF-16" and a plain one claiming gzip was taken.
    response = await client.post(
        "/jobs",
        content=b'{"task": "echo"}',
        headers={**JSON, "content-encoding": encoding},
    )
    assert response.status_code == 415, response.text
    assert response.json()["detail"] == (
        f"Content-Encoding {encoding!r} is not supported: send the body uncompressed, without "
        "a Content-Encoding header"
    )
    assert await db.fetchval("SELECT count(*) FROM jobs") == 0
    identity = await client.post(
        "/jobs", content=b'{"task": "echo"}', headers={**JSON, "content-encoding": "identity"}
    )
    assert identity.status_code == 201


def test_cli_enqueue_payload_naming_a_key_twice_exits_2() -> None:
    # The API refuses {"a": 1, "a": 2}; the CLI used to send {"a": 2}.
    result = CliRunner().invoke(
        cli, ["enqueue", "echo", "--payload", '{"a": 1, "a": 2}', "--url", "http://127.0.0.1:1"]
    )
    assert result.exit_code == 2
    assert "--payload: duplicate key 'a' in the object at $" in result.output


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (
            ["enqueue-batch", "-"],
            '[{"task": "echo", "task": "fail"}]',
            "<stdin>: duplicate key 'task' in the object at $[0]",
        ),
        (
            ["enqueue", "echo", "--payload", '{"a": NaN}'],
            None,
            "--payload holds NaN, Infinity or a number too large for a float: not JSON",
        ),
        (
            ["enqueue-batch", "-"],
            '[{"task": "echo", "payload": {"a": 1e999}}]',
            "<stdin> holds NaN, Infinity or a number too large for a float: not JSON",
        ),
    ],
)
def test_cli_json_input_the_api_would_refuse_exits_2(
    args: list[str], stdin: str | None, message: str
) -> None:
    # enqueue-batch sent {"task": "fail"} for a task named twice, and NaN in a payload ended
    # in a traceback (fresh-user findings).
    result = CliRunner().invoke(cli, [*args, "--url", "http://127.0.0.1:1"], input=stdin)
    assert result.exit_code == 2, result.output
    assert message in result.output


async def test_create_job_without_a_content_type_is_415(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    # The body is an object, but FastAPI parses JSON only when the request says so; the answer
    # was "must be a JSON object" (fresh-user finding).
    response = await client.post("/jobs", content=b'{"task": "echo"}')  # no Content-Type
    assert response.status_code == 415, response.text
    assert response.json()["detail"] == (
        "send the body as JSON with 'Content-Type: application/json' (got 'no Content-Type')"
    )
    assert await db.fetchval("SELECT count(*) FROM jobs") == 0
