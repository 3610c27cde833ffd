"""The HTTP edge in one process: the loopback Host rule without keys (DNS rebinding), the role
check before the body is read, refusals logged and counted, X-Forwarded-Host believed from
trusted proxies only, and the OpenAPI document of the access rules."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import httpx
import pytest
import structlog
from fastapi.routing import APIRoute
from starlette.types import Message

from jobqueue.api.auth import RULE_KEY
from jobqueue.api.guard import GuardedRoute
from tests.api.test_auth import ADMIN_KEY, KEYS, READ_KEY, WRONG_KEY, bearer, login
from tests.api.test_input_limits import call_asgi, status_and_detail
from tests.conftest import AppFactory

EVIL = "rebind.example"


def counter(text: str, name: str, reason: str) -> float:
    """The value of ``name{reason=...}`` in a /metrics page (0 when absent)."""
    for line in text.splitlines():
        if line.startswith(f'{name}{{reason="{reason}"}} '):
            return float(line.split()[-1])
    return 0.0


# --- the Host rule without keys


async def test_no_keys_foreign_host_with_matching_origin_is_421_and_changes_nothing(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await start_app(workers_enabled=False)
    job_id = (await client.post("/jobs", json={})).json()["id"]
    rebound = {"Host": f"{EVIL}:8000", "Origin": f"http://{EVIL}:8000"}

    read = await client.get(f"/jobs/{job_id}", headers=rebound)
    cancel = await client.post(f"/jobs/{job_id}/cancel", headers=rebound)
    create = await client.post("/jobs", json={}, headers=rebound)

    assert [r.status_code for r in (read, cancel, create)] == [421, 421, 421]
    assert read.json() == {
        "detail": "this service has no API keys, so it answers only requests addressed to a "
        "loopback name (localhost, 127.0.0.1, [::1]): set JOBQUEUE_API_KEYS to serve other "
        "host names (see docs/security.md)"
    }
    assert await db.fetchval("SELECT count(*) FROM jobs") == 1
    assert await db.fetchval("SELECT status FROM jobs") == "todo"


@pytest.mark.parametrize(
    "host", ["localhost", "localhost:8000", "127.0.0.1", "127.3.2.1:80", "[::1]", "[::1]:8000"]
)
async def test_no_keys_loopback_host_is_served(start_app: AppFactory, host: str) -> None:
    client = await start_app(workers_enabled=False)
    response = await client.get("/jobs", headers={"Host": host})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("host", [EVIL, "localhost.rebind.example", "127.0.0.1.nip.io", "0.0.0.0"])
async def test_no_keys_other_host_is_421_on_every_route(start_app: AppFactory, host: str) -> None:
    client = await start_app(workers_enabled=False)
    for path in ("/jobs", "/ui", "/healthz", "/openapi.json", "/nothing-here"):
        assert (await client.get(path, headers={"Host": host})).status_code == 421, path


async def test_no_keys_host_refusal_is_logged_bounded_and_counted(start_app: AppFactory) -> None:
    client = await start_app(workers_enabled=False)
    with structlog.testing.capture_logs() as logs:
        await client.get("/jobs", headers={"Host": "h" * 5000})
    (event,) = [e for e in logs if e["event"] == "auth_failed"]
    assert (event["reason"], event["status"], event["client"]) == ("host", 421, "127.0.0.1")
    assert event["host"] == "h" * 100
    metrics = (await client.get("/metrics")).text
    assert counter(metrics, "jobqueue_auth_failures_total", "host") == 1


async def test_keys_or_insecure_serve_any_host(start_app: AppFactory) -> None:
    keyed = await start_app(api_keys=KEYS, workers_enabled=False)
    response = await keyed.get("/jobs", headers={"Host": EVIL, **bearer(READ_KEY)})
    assert response.status_code == 200
    insecure = await start_app(insecure=True, workers_enabled=False)
    assert (await insecure.get("/jobs", headers={"Host": EVIL})).status_code == 200


# --- the role check, before the body is read


async def test_malformed_body_without_key_is_401_not_400(start_app: AppFactory) -> None:
    client = await start_app(api_keys=KEYS, workers_enabled=False)
    response = await client.post(
        "/jobs", content=b"{bad", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 401
    assert response.headers["connection"] == "close"


async def test_8_mb_body_without_key_is_401_without_reading_it(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await start_app(api_keys=KEYS, workers_enabled=False)
    reads = 0

    async def receive() -> Message:
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": b"[" * 65_536, "more_body": True}

    # Under JOBQUEUE_MAX_REQUEST_BYTES (16 MiB), so only the missing key refuses it.
    length = [(b"content-length", str(8 * 1_048_576).encode())]
    sent = await call_asgi(client.app, length, receive)

    status, detail = status_and_detail(sent)
    start = next(m for m in sent if m["type"] == "http.response.start")
    assert (status, reads) == (401, 0)
    assert client.app.state.jobqueue.bodies.in_flight == 0
    assert "Authorization: Bearer" in detail
    assert (b"connection", b"close") in start["headers"]
    assert await db.fetchval("SELECT count(*) FROM jobs") == 0


async def test_read_key_posting_body_is_403_without_reading_it(start_app: AppFactory) -> None:
    client = await start_app(api_keys=KEYS, workers_enabled=False)
    reads = 0

    async def receive() -> Message:
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": b"{}", "more_body": False}

    headers = [(b"content-length", b"2"), (b"authorization", f"Bearer {READ_KEY}".encode())]
    sent = await call_asgi(client.app, headers, receive)

    assert status_and_detail(sent) == (
        403,
        "this needs the write role; key 'dash' has the read role",
    )
    assert reads == 0


async def test_create_job_route_solves_no_access_dependency(start_app: AppFactory) -> None:
    client = await start_app(workers_enabled=False)
    app: Any = client.app
    schema = app.openapi()
    assert schema["paths"]["/jobs"]["post"][RULE_KEY] == {"role": "write"}
    (route,) = {
        id(r): r
        for r in walk_routes(app.router.routes)
        if getattr(r, "path", None) == "/jobs" and "POST" in getattr(r, "methods", ())
    }.values()
    # The role is checked by the route class, not by a dependency FastAPI solves per request.
    names = [d.call.__name__ for d in route.dependant.dependencies if d.call is not None]
    assert names == ["get_service"]


def walk_routes(routes: list[Any]) -> list[Any]:
    """Every route of an app, also inside included routers (FastAPI >= 0.165 keeps them as
    ``_IncludedRouter`` branches; older versions copy the routes into the app)."""
    found: list[Any] = []
    for route in routes:
        inner = getattr(route, "original_router", None)
        found.extend(walk_routes(inner.routes) if inner is not None else [route])
    return found


async def test_every_route_with_a_rule_is_a_guarded_route(start_app: AppFactory) -> None:
    client = await start_app(workers_enabled=False)
    routes = walk_routes(client.app.router.routes)
    ruled = [r for r in routes if isinstance(r, APIRoute) and RULE_KEY in (r.openapi_extra or {})]
    assert len(ruled) >= 11
    # A rule on a plain APIRoute would be ignored: the route would be open.
    assert [r.path for r in ruled if not isinstance(r, GuardedRoute)] == []


# --- refusals logged and counted


@pytest.mark.parametrize(
    ("headers", "reason", "status"),
    [
        ({}, "missing", 401),
        ({"Authorization": "Basic abc"}, "malformed", 401),
        (bearer(WRONG_KEY), "invalid_key", 401),
        ({"Cookie": "jq_session=forged.token"}, "invalid_session", 401),
    ],
)
async def test_failed_authentication_is_logged_with_reason_and_counted_never_the_key(
    start_app: AppFactory, headers: dict[str, str], reason: str, status: int
) -> None:
    client = await start_app(api_keys=KEYS, workers_enabled=False)
    with structlog.testing.capture_logs() as logs:
        response = await client.get("/jobs", headers=headers)
    assert response.status_code == status
    (event,) = [e for e in logs if e["event"] == "auth_failed"]
    assert event == {
        "event": "auth_failed",
        "log_level": "warning",
        "reason": reason,
        "status": status,
        "client": "127.0.0.1",
        "method": "GET",
        "route": "/jobs",
    }
    assert WRONG_KEY not in json.dumps(logs)
    metrics = (await client.get("/metrics")).text
    assert counter(metrics, "jobqueue_auth_failures_total", reason) == 1


async def test_403_is_logged_with_key_name_and_counted(start_app: AppFactory) -> None:
    client = await start_app(api_keys=KEYS, workers_enabled=False)
    with structlog.testing.capture_logs() as logs:
        response = await client.post("/jobs", json={}, headers=bearer(READ_KEY))
    assert response.status_code == 403
    (event,) = [e for e in logs if e["event"] == "auth_failed"]
    assert (event["reason"], event["status"], event["key_name"]) == ("role", 403, "dash")
    assert READ_KEY not in json.dumps(logs)
    metrics = (await client.get("/metrics")).text
    assert counter(metrics, "jobqueue_auth_failures_total", "role") == 1


async def test_login_with_wrong_key_is_logged_and_counted(start_app: AppFactory) -> None:
    client = await start_app(api_keys=KEYS, workers_enabled=False)
    with structlog.testing.capture_logs() as logs:
        response = await client.post("/ui/login", data={"key": WRONG_KEY})
    assert response.status_code == 401
    (event,) = [e for e in logs if e["event"] == "auth_failed"]
    assert (event["reason"], event["via"]) == ("invalid_key", "login")
    assert WRONG_KEY not in json.dumps(logs)
    metrics = (await client.get("/metrics")).text
    assert counter(metrics, "jobqueue_auth_failures_total", "invalid_key") == 1


# --- X-Forwarded-Host only from trusted proxies


async def session_cancel(
    client: httpx.AsyncClient, peer: str, token: str, csrf: str, job_id: int
) -> httpx.Response:
    """Cancel through the dashboard's API from TCP peer ``peer``, as a browser behind a proxy
    named ``jobs.example.com`` would: Host is the backend's, X-Forwarded-Host the proxy's."""
    app = client.app  # type: ignore[attr-defined]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=(peer, 40000)), base_url="http://localhost"
    ) as other:
        return await other.post(
            f"/ui/api/jobs/{job_id}/cancel",
            headers={
                "Cookie": f"jq_session={token}",
                "X-CSRF-Token": csrf,
                "Origin": "https://jobs.example.com",
                "X-Forwarded-Host": "jobs.example.com",
                "Sec-Fetch-Site": "same-origin",
            },
        )


async def test_forwarded_host_from_trusted_proxy_counts_as_this_origin(
    start_app: AppFactory,
) -> None:
    client = await start_app(api_keys=KEYS, workers_enabled=False)
    job_id = (await client.post("/jobs", json={}, headers=bearer(ADMIN_KEY))).json()["id"]
    token, csrf = await login(client, ADMIN_KEY)

    response = await session_cancel(client, "127.0.0.1", token, csrf, job_id)

    assert response.status_code == 200, response.text


async def test_forwarded_host_from_untrusted_peer_is_ignored(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await start_app(api_keys=KEYS, workers_enabled=False, forwarded_allow_ips="10.9.8.7")
    job_id = (await client.post("/jobs", json={}, headers=bearer(ADMIN_KEY))).json()["id"]
    token, csrf = await login(client, ADMIN_KEY)

    response = await session_cancel(client, "127.0.0.1", token, csrf, job_id)

    assert response.status_code == 403
    assert response.json() == {
        "detail": "refused: the request came from another origin (https://jobs.example.com)"
    }
    assert await db.fetchval("SELECT status FROM jobs WHERE id = $1", job_id) == "todo"


# --- the OpenAPI document


async def test_openapi_lists_401_403_and_bearer_on_every_guarded_operation(
    start_app: AppFactory,
) -> None:
    client = await start_app(workers_enabled=False)
    schema = (await client.get("/openapi.json")).json()
    guarded = {
        (path, method): operation
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if RULE_KEY in operation
    }
    assert ("/ui/api/overview", "get") in guarded
    assert ("/metrics", "get") in guarded
    for (path, method), operation in guarded.items():
        assert {"401", "403"} <= set(operation["responses"]), (path, method)
        assert {"bearer": []} in operation["security"], (path, method)
    assert schema["paths"]["/metrics"]["get"]["security"] == [{}, {"bearer": []}]
    assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
