"""HTTP protocol details at the edge, in one process: job ids of any length in every job route
(never a 500), the Host field's count and form (RFC 9112 section 3.2), HEAD answered as GET
(RFC 9110 section 9.3.2), the Allow of a 405 (RFC 9110 section 15.5.6), and the
Idempotency-Key header sent once in visible ASCII. The absolute-form request target and the
same checks on a real server's sockets: ``tests/e2e/test_edge_protocol.py``."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
import structlog
from starlette.types import Message

from tests.api.test_auth import ADMIN_KEY, KEYS, bearer
from tests.conftest import AppClient, AppFactory

JOB_ROUTES = [
    ("GET", "/jobs/{}"),
    ("GET", "/jobs/{}/attempts"),
    ("POST", "/jobs/{}/cancel"),
    ("POST", "/jobs/{}/retry"),
    ("GET", "/ui/api/jobs/{}"),
    ("GET", "/ui/api/jobs/{}/attempts"),
    ("POST", "/ui/api/jobs/{}/cancel"),
    ("POST", "/ui/api/jobs/{}/retry"),
]
PAST_BIGINT = [
    pytest.param(str(2**63), id="2^63"),
    pytest.param("9" * 20, id="20-digits"),
    pytest.param("9" * 4301, id="4301-digits"),
    pytest.param("1" * 30_000, id="30000-digits"),
]
OUT_OF_RANGE = [
    {
        "type": "less_than_equal",
        "loc": ["path", "job_id"],
        "msg": "Input should be less than or equal to 9223372036854775807",
        "ctx": {"le": 9223372036854775807},
    }
]


# --- job ids


@pytest.mark.parametrize(("method", "path"), JOB_ROUTES)
async def test_job_route_4301_digit_id_is_422_naming_the_bound(
    start_app: AppFactory, method: str, path: str
) -> None:
    client = await start_app(workers_enabled=False)
    response = await client.request(method, path.format("9" * 4301))
    assert (response.status_code, response.json()) == (422, {"detail": OUT_OF_RANGE})


@pytest.mark.parametrize("job_id", PAST_BIGINT)
async def test_get_job_id_past_bigint_is_422_naming_the_bound(
    start_app: AppFactory, job_id: str
) -> None:
    client = await start_app(workers_enabled=False)
    response = await client.get(f"/jobs/{job_id}")
    assert (response.status_code, response.json()) == (422, {"detail": OUT_OF_RANGE})


async def test_job_route_4301_digit_id_without_key_is_401(start_app: AppFactory) -> None:
    client = await start_app(api_keys=KEYS, workers_enabled=False)
    response = await client.get(f"/jobs/{'9' * 4301}")
    assert response.status_code == 401


async def test_job_route_4301_digit_id_with_key_is_422(start_app: AppFactory) -> None:
    client = await start_app(api_keys=KEYS, workers_enabled=False)
    response = await client.get(f"/jobs/{'9' * 4301}", headers=bearer(ADMIN_KEY))
    assert (response.status_code, response.json()) == (422, {"detail": OUT_OF_RANGE})


async def test_job_page_4301_digit_id_is_404_page(start_app: AppFactory) -> None:
    client = await start_app(workers_enabled=False)
    response = await client.get(f"/ui/jobs/{'9' * 4301}")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")


async def test_job_route_id_with_leading_zeros_names_the_job(start_app: AppFactory) -> None:
    client = await start_app(workers_enabled=False)
    job_id = (await client.post("/jobs", json={})).json()["id"]
    response = await client.get(f"/jobs/{job_id:05d}")
    assert (response.status_code, response.json()["id"]) == (200, job_id)


# --- the Host field (RFC 9112 section 3.2)


@pytest.mark.parametrize(
    "hosts", [["localhost", "evil.com"], ["evil.com", "localhost"], ["localhost", "localhost"]]
)
async def test_two_host_headers_are_400(start_app: AppFactory, hosts: list[str]) -> None:
    client = await start_app(workers_enabled=False)
    response = await client.get("/jobs", headers=[("Host", host) for host in hosts])
    assert (response.status_code, response.json()) == (
        400,
        {"detail": "the request has 2 Host header lines; send exactly one (RFC 9112 section 3.2)"},
    )


async def test_two_host_headers_with_keys_are_400(start_app: AppFactory) -> None:
    client = await start_app(api_keys=KEYS, workers_enabled=False)
    headers = [("Host", "localhost"), ("Host", "other.example"), *bearer(ADMIN_KEY).items()]
    response = await client.get("/jobs", headers=headers)
    assert response.status_code == 400


@pytest.mark.parametrize("host", ["evil com", "local/host", "localhost:80:80", "[::1", "h\u00e9"])
async def test_malformed_host_is_400(start_app: AppFactory, host: str) -> None:
    client = await start_app(api_keys=KEYS, workers_enabled=False)
    response = await client.get("/healthz", headers=[(b"Host", host.encode("latin-1"))])
    assert (response.status_code, response.json()) == (
        400,
        {
            "detail": f"the Host header {host!r} is not a host name or address with an optional "
            "port (RFC 9110 section 7.2)"
        },
    )


@pytest.mark.parametrize(
    "host", ["localhost", "localhost:8000", "[::1]:8000", "127.0.0.1", "api.example.com", ""]
)
async def test_well_formed_host_with_keys_is_served(start_app: AppFactory, host: str) -> None:
    client = await start_app(api_keys=KEYS, workers_enabled=False)
    response = await client.get("/healthz", headers={"Host": host})
    assert response.status_code == 200


async def asgi_get(client: AppClient, headers: list[tuple[bytes, bytes]], version: str) -> int:
    """The status of ``GET /healthz`` sent straight to the app with exactly ``headers``."""
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": version,
        "method": "GET",
        "scheme": "http",
        "path": "/healthz",
        "raw_path": b"/healthz",
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }
    await client.app(scope, receive, send)
    status: int = next(m for m in sent if m["type"] == "http.response.start")["status"]
    return status


async def test_http_1_1_request_without_host_is_400(start_app: AppFactory) -> None:
    client = await start_app(api_keys=KEYS, workers_enabled=False)
    assert await asgi_get(client, [], "1.1") == 400


async def test_http_1_0_request_without_host_is_served_with_keys(start_app: AppFactory) -> None:
    client = await start_app(api_keys=KEYS, workers_enabled=False)
    assert await asgi_get(client, [], "1.0") == 200


# --- HEAD (RFC 9110 section 9.3.2)


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/jobs", "/openapi.json"])
async def test_head_is_answered_as_get_without_content(start_app: AppFactory, path: str) -> None:
    client = await start_app(workers_enabled=False)
    get = await client.get(path)
    head = await client.head(path)
    assert (head.status_code, head.content) == (get.status_code, b"")
    assert head.headers["content-type"] == get.headers["content-type"]
    assert int(head.headers["content-length"]) > 0


async def test_head_is_logged_as_head_with_route_template(start_app: AppFactory) -> None:
    client = await start_app(workers_enabled=False)
    with structlog.testing.capture_logs() as logs:
        await client.head("/healthz")
    (event,) = [e for e in logs if e["event"] == "http_request"]
    assert (event["method"], event["route"], event["status"]) == ("HEAD", "/healthz", 200)


async def test_head_on_keyed_route_without_key_is_401(start_app: AppFactory) -> None:
    client = await start_app(api_keys=KEYS, workers_enabled=False)
    assert (await client.head("/jobs")).status_code == 401
    assert (await client.head("/jobs", headers=bearer(ADMIN_KEY))).status_code == 200


async def test_head_on_post_only_route_is_405_allowing_post(start_app: AppFactory) -> None:
    client = await start_app(workers_enabled=False)
    response = await client.head("/jobs/batch")
    assert (response.status_code, response.headers["allow"]) == (405, "POST")


# --- 405 and its Allow (RFC 9110 section 15.5.6)


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("OPTIONS", "/jobs", "GET, HEAD, POST"),
        ("DELETE", "/jobs", "GET, HEAD, POST"),
        ("PUT", "/ui/api/jobs", "GET, HEAD, POST"),
        ("DELETE", "/jobs/1", "GET, HEAD"),
        ("GET", "/jobs/1/cancel", "POST"),
        ("OPTIONS", "/healthz", "GET, HEAD"),
        ("POST", "/metrics", "GET, HEAD"),
    ],
)
async def test_method_not_allowed_lists_every_method_of_the_path(
    start_app: AppFactory, method: str, path: str, allow: str
) -> None:
    client = await start_app(workers_enabled=False)
    response = await client.request(method, path)
    assert (response.status_code, response.headers["allow"]) == (405, allow)
    assert response.json() == {"detail": f"{method} is not allowed here; use {allow}"}


# --- the Idempotency-Key header


async def test_create_job_two_idempotency_key_headers_is_422_and_creates_nothing(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await start_app(workers_enabled=False)
    headers = [("Idempotency-Key", "order-1"), ("Idempotency-Key", "order-2")]
    response = await client.post("/jobs", json={}, headers=headers)
    assert (response.status_code, response.json()) == (
        422,
        {
            "detail": "the request has 2 Idempotency-Key headers: send one (which of them would "
            "count is ambiguous)"
        },
    )
    assert await db.fetchval("SELECT count(*) FROM jobs") == 0


async def test_create_job_non_ascii_idempotency_key_header_is_422_and_creates_nothing(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await start_app(workers_enabled=False)
    headers = [(b"Idempotency-Key", "clé".encode())]
    response = await client.post("/jobs", json={}, headers=headers)
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {
            "type": "visible_ascii",
            "loc": ["header", "Idempotency-Key"],
            "msg": "the Idempotency-Key header must be visible ASCII (letters, digits, "
            "punctuation and spaces): put other text in the body's idempotency_key field",
        }
    ]
    assert await db.fetchval("SELECT count(*) FROM jobs") == 0


async def test_create_job_non_ascii_idempotency_key_field_is_stored_as_sent(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await start_app(workers_enabled=False)
    response = await client.post("/jobs", json={"idempotency_key": "clé"})
    assert response.status_code == 201
    assert await db.fetchval("SELECT idempotency_key FROM jobs") == "clé"


async def test_create_job_ascii_idempotency_key_header_with_space_is_accepted(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await start_app(workers_enabled=False)
    response = await client.post("/jobs", json={}, headers={"Idempotency-Key": "order 42"})
    assert response.status_code == 201
    assert await db.fetchval("SELECT idempotency_key FROM jobs") == "order 42"
