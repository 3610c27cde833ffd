"""Input limits: the body size limit (before parsing), payload depth, string lengths, and the
OpenAPI schema that documents them. Every refused request creates nothing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import pytest
from starlette.types import Message

from jobqueue.settings import Settings
from tests.conftest import AppFactory
from tests.helpers import wait_until

JSON = {"content-type": "application/json"}
CHUNK = 65_536


def nested(depth: int) -> dict[str, Any]:
    """A payload object nesting ``depth`` levels (``{}`` is 1, ``{"a": {}}`` is 2)."""
    payload: dict[str, Any] = {}
    for _ in range(depth - 1):
        payload = {"a": payload}
    return payload


async def call_asgi(app: Any, headers: list[tuple[bytes, bytes]], receive: Any) -> list[Message]:
    """Send one ``POST /jobs`` straight to the ASGI app; the messages it sent back."""
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/jobs",
        "raw_path": b"/jobs",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"localhost"), (b"content-type", b"application/json"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("localhost", 80),
    }
    await app(scope, receive, send)
    return sent


def status_and_detail(sent: list[Message]) -> tuple[int, str]:
    """The status and the ``detail`` of a JSON error response made of ASGI messages."""
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], json.loads(body)["detail"]


async def test_create_job_content_length_over_limit_is_413_without_reading_body(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await start_app(max_request_bytes=1_000_000, max_payload_bytes=1_000_000)
    reads = 0

    async def receive() -> Message:
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": b"{" * CHUNK, "more_body": True}

    hundred_mb = str(100 * 1024 * 1024).encode()
    sent = await call_asgi(client.app, [(b"content-length", hundred_mb)], receive)

    status, detail = status_and_detail(sent)
    assert (status, reads) == (413, 0)
    assert detail.startswith("the request body is 104857600 bytes; the limit is 1000000 bytes")
    assert "JOBQUEUE_MAX_REQUEST_BYTES" in detail
    assert await db.fetchval("SELECT count(*) FROM jobs") == 0


async def test_create_job_streamed_body_over_limit_is_413_after_reading_only_the_limit(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await start_app(max_request_bytes=200_000, max_payload_bytes=200_000)
    read = 0

    async def receive() -> Message:
        # A chunked upload that never ends: only the limit's worth may be read.
        nonlocal read
        read += CHUNK
        return {"type": "http.request", "body": b" " * CHUNK, "more_body": True}

    sent = await call_asgi(client.app, [(b"transfer-encoding", b"chunked")], receive)

    status, detail = status_and_detail(sent)
    assert status == 413
    assert read == 4 * CHUNK  # the first chunk that passes 200,000 bytes
    assert detail.startswith(
        "the request body passed 200000 bytes before it ended; the limit is 200000 bytes"
    )
    assert await db.fetchval("SELECT count(*) FROM jobs") == 0


async def test_batch_body_over_limit_is_413_and_creates_nothing(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await start_app(max_request_bytes=10_000, max_payload_bytes=10_000)
    body = {"jobs": [{"task": "echo", "payload": {"n": n}} for n in range(1000)]}

    response = await client.post("/jobs/batch", json=body)

    assert response.status_code == 413
    assert "JOBQUEUE_MAX_REQUEST_BYTES" in response.json()["detail"]
    assert await db.fetchval("SELECT count(*) FROM jobs") == 0


async def test_batch_body_under_limit_is_201(start_app: AppFactory) -> None:
    client = await start_app(
        max_request_bytes=10_000, max_payload_bytes=10_000, workers_enabled=False
    )
    body = {"jobs": [{"task": "echo", "payload": {"n": n}} for n in range(100)]}
    assert len(json.dumps(body)) < 10_000

    response = await client.post("/jobs/batch", json=body)

    assert response.status_code == 201, response.text
    assert len(response.json()["ids"]) == 100


async def test_get_with_body_over_limit_is_413(start_app: AppFactory) -> None:
    client = await start_app(max_request_bytes=100, max_payload_bytes=100)

    response = await client.request("GET", "/jobs", content=b"x" * 101)

    assert response.status_code == 413
    assert response.headers["content-type"] == "application/json"


def test_settings_default_request_limit_fits_10000_job_batch_of_1500_byte_jobs() -> None:
    job = {
        "task": "send_invoice_email",
        "queue": "emails",
        "priority": 10,
        "max_attempts": 5,
        "description": "Send invoice INV-2026-000123 to the customer",
        "idempotency_key": "invoice-email-INV-2026-000123-attempt-1",
        "payload": {
            "invoice_id": "INV-2026-000123",
            "customer_id": 1234567,
            "email": "first.last@example.com",
            "template": "invoice_v2",
            "amount_cents": 123456,
            "currency": "EUR",
            "tags": ["billing", "monthly", "eu"],
            "metadata": {"source": "billing-service", "region": "eu-west-1", "note": "x" * 1000},
        },
    }
    # As httpx and the CLI send it (json.dumps' default separators, no indentation).
    body = json.dumps({"jobs": [job] * 10_000})
    defaults = Settings(_env_file=None)
    assert len(json.dumps(job)) == 1499
    assert len(body.encode()) < defaults.max_request_bytes == 16 * 1_048_576
    assert defaults.max_request_bytes > defaults.max_payload_bytes
    assert defaults.max_request_bytes_in_flight == 4 * defaults.max_request_bytes


async def test_create_job_payload_deeper_than_limit_is_422_naming_limit(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    response = await client.post("/jobs", json={"payload": nested(65)})

    assert response.status_code == 422
    assert response.json() == {
        "detail": "payload nests more than 64 levels of objects and arrays, the limit "
        "(JOBQUEUE_MAX_PAYLOAD_DEPTH): flatten it"
    }
    assert await db.fetchval("SELECT count(*) FROM jobs") == 0


async def test_create_job_payload_at_depth_limit_is_201(client: httpx.AsyncClient) -> None:
    response = await client.post("/jobs", json={"payload": nested(64)})
    assert response.status_code == 201, response.text


async def test_create_job_payload_depth_counts_arrays_and_follows_setting(
    start_app: AppFactory,
) -> None:
    client = await start_app(max_payload_depth=3, workers_enabled=False)
    ok = await client.post("/jobs", json={"payload": {"a": [1, {"b": "[[[[{{{{"}]}})
    too_deep = await client.post("/jobs", json={"payload": {"a": [[{}]]}})
    assert (ok.status_code, too_deep.status_code) == (201, 422)
    assert "more than 3 levels" in too_deep.json()["detail"]


async def test_payload_at_highest_depth_setting_is_stored_and_read_back(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    # JOBQUEUE_MAX_PAYLOAD_DEPTH at its highest allowed value (200): a job as deep as that is
    # created, read alone and in a page (the response adds levels of its own); with 900 a
    # deep POST /jobs answered 500 after inserting, as the response could not be serialised.
    client = await start_app(max_payload_depth=200, workers_enabled=False)

    created = await client.post("/jobs", json={"payload": nested(200)})
    too_deep = await client.post("/jobs", json={"payload": nested(201)})
    job_id = created.json()["id"]
    read = await client.get(f"/jobs/{job_id}")
    page = await client.get("/jobs")

    assert (created.status_code, too_deep.status_code) == (201, 422), created.text
    assert (read.status_code, read.json()["payload"]) == (200, nested(200))
    assert page.status_code == 200
    assert [(job["id"], job["payload"]) for job in page.json()["items"]] == [(job_id, nested(200))]
    assert await db.fetchval("SELECT count(*) FROM jobs") == 1


async def test_batch_payload_too_deep_is_422_naming_index(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    response = await client.post("/jobs/batch", json={"jobs": [{}, {"payload": nested(65)}]})

    assert response.status_code == 422
    assert response.json()["detail"].startswith("jobs[1]: payload nests more than 64 levels")
    assert await db.fetchval("SELECT count(*) FROM jobs") == 0


@pytest.mark.parametrize(
    ("field", "longest"),
    [("queue", 100), ("description", 10_000), ("idempotency_key", 255)],
)
async def test_create_job_string_one_over_its_length_is_422_and_at_it_is_201(
    start_app: AppFactory, db: asyncpg.Connection, field: str, longest: int
) -> None:
    client = await start_app(remote_queues="q" * 100)  # the longest queue name, known
    over = await client.post("/jobs", json={field: "q" * (longest + 1)})
    at = await client.post("/jobs", json={field: "q" * longest})

    assert over.status_code == 422
    assert over.json()["detail"][0]["loc"] == ["body", field]
    assert at.status_code == 201, at.text
    assert await db.fetchval("SELECT count(*) FROM jobs") == 1


async def test_create_job_task_over_200_characters_is_422_on_its_length(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/jobs", json={"task": "t" * 201})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "task"]
    assert response.json()["detail"][0]["type"] == "string_too_long"


async def test_create_job_idempotency_key_header_over_255_is_422(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/jobs", json={}, headers={"Idempotency-Key": "k" * 256})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]


@pytest.mark.parametrize(
    "params",
    [{"queue": "q" * 101}, {"task": "t" * 201}, {"limit": "1001"}, {"limit": "0"}],
)
async def test_list_jobs_filter_over_its_limit_is_422(
    client: httpx.AsyncClient, params: dict[str, str]
) -> None:
    response = await client.get("/jobs", params=params)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", next(iter(params))]


async def test_openapi_documents_every_input_limit(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    fields = schema["components"]["schemas"]["JobCreate"]["properties"]
    lengths = {
        name: fields[name].get("maxLength")
        or next(o["maxLength"] for o in fields[name]["anyOf"] if "maxLength" in o)
        for name in ("queue", "task", "description", "idempotency_key")
    }
    assert lengths == {"queue": 100, "task": 200, "description": 10_000, "idempotency_key": 255}
    assert (fields["priority"]["minimum"], fields["priority"]["maximum"]) == (-100, 100)
    attempts = next(o for o in fields["max_attempts"]["anyOf"] if o.get("type") == "integer")
    assert (attempts["minimum"], attempts["maximum"]) == (1, 1000)
    assert "JOBQUEUE_MAX_PAYLOAD_DEPTH" in fields["payload"]["description"]
    assert "JOBQUEUE_MAX_PAYLOAD_BYTES" in fields["payload"]["description"]
    batch = schema["components"]["schemas"]["BatchCreate"]["properties"]["jobs"]
    assert (batch["minItems"], batch["maxItems"]) == (1, 10_000)
    create = schema["paths"]["/jobs"]["post"]
    assert "JOBQUEUE_MAX_REQUEST_BYTES" in create["responses"]["413"]["description"]
    assert "200" in create["responses"]
    params = {p["name"]: p["schema"] for p in schema["paths"]["/jobs"]["get"]["parameters"]}
    assert (params["limit"]["minimum"], params["limit"]["maximum"]) == (1, 1000)


def padded_job(size: int) -> bytes:
    """A valid ``POST /jobs`` body of exactly ``size`` bytes."""
    skeleton = b'{"payload": {"pad": ""}}'
    return skeleton[:-3] + b"x" * (size - len(skeleton)) + skeleton[-3:]


async def test_create_job_declared_body_over_bytes_in_flight_is_503_without_reading_it(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await start_app(
        max_request_bytes=600_000,
        max_payload_bytes=600_000,
        max_request_bytes_in_flight=1_000_000,
        workers_enabled=False,
    )
    app: Any = client.app
    bodies = app.state.jobqueue.bodies
    release = asyncio.Event()
    body = padded_job(600_000)
    held_receive = held_until(release, body)
    length = [(b"content-length", b"600000")]
    first = asyncio.create_task(call_asgi(app, length, held_receive))
    await wait_until(reserved(bodies, 599_999), 5, "first body all but its last byte received")
    reads = 0

    async def counting_receive() -> Message:
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": body, "more_body": False}

    second = await call_asgi(app, length, counting_receive)
    release.set()
    first_sent = await first

    status, detail = status_and_detail(second)
    start = next(m for m in second if m["type"] == "http.response.start")
    assert (status, reads) == (503, 0)
    assert (b"retry-after", b"1") in start["headers"]
    assert (b"connection", b"close") in start["headers"]
    assert "(1000000 bytes in flight, JOBQUEUE_MAX_REQUEST_BYTES_IN_FLIGHT)" in detail
    assert status_only(first_sent) == 201
    assert bodies.in_flight == 0
    assert await db.fetchval("SELECT count(*) FROM jobs") == 1
    third = await call_asgi(app, length, counting_receive)
    assert status_only(third) == 201


async def test_create_job_streamed_body_passing_bytes_in_flight_is_503(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await start_app(
        max_request_bytes=600_000,
        max_payload_bytes=600_000,
        max_request_bytes_in_flight=1_000_000,
        workers_enabled=False,
    )
    app: Any = client.app
    bodies = app.state.jobqueue.bodies
    release = asyncio.Event()
    held_receive = held_until(release, padded_job(600_000))
    first = asyncio.create_task(call_asgi(app, [(b"content-length", b"600000")], held_receive))
    await wait_until(reserved(bodies, 599_999), 5, "first body all but its last byte received")
    read = 0

    async def streaming_receive() -> Message:
        nonlocal read
        read += CHUNK
        return {"type": "http.request", "body": b" " * CHUNK, "more_body": True}

    second = await call_asgi(app, [(b"transfer-encoding", b"chunked")], streaming_receive)
    release.set()
    await first

    status, detail = status_and_detail(second)
    assert status == 503
    assert read == 7 * CHUNK  # the first chunk past the 400,001 bytes left of the budget
    assert detail.startswith("the service is receiving as many request bodies as it takes")
    assert bodies.in_flight == 0
    assert await db.fetchval("SELECT count(*) FROM jobs") == 1


def test_settings_bytes_in_flight_below_request_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="MAX_REQUEST_BYTES_IN_FLIGHT must be at least"):
        Settings(_env_file=None, max_request_bytes=2_000_000, max_request_bytes_in_flight=1_000_000)


def held_until(release: asyncio.Event, body: bytes) -> Callable[[], Awaitable[Message]]:
    """An ASGI ``receive`` that gives all of ``body`` but its last byte at once, and the last
    byte once ``release`` is set: a body on its way, its bytes received so far in flight."""
    chunks = [body[:-1], body[-1:]]

    async def receive() -> Message:
        chunk = chunks.pop(0)
        if not chunks:
            await release.wait()
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    return receive


def reserved(bodies: Any, size: int) -> Callable[[], Awaitable[bool]]:
    """A predicate for ``wait_until``: ``size`` body bytes are in flight."""

    async def check() -> bool:
        in_flight: int = bodies.in_flight
        return in_flight == size

    return check


def status_only(sent: list[Message]) -> int:
    """The status of a response made of ASGI messages."""
    start = next(m for m in sent if m["type"] == "http.response.start")
    status: int = start["status"]
    return status
