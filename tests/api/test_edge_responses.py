"""What the edge answers: the JSON 500 of an unexpected exception (logged once with traceback and
request id), fixed words in /readyz and /healthz, Swagger UI from the service itself under a
CSP, and ``Cache-Control: no-store`` on the dashboard."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import re
from typing import Any

import httpx
import structlog

from jobqueue.api.state import state_of
from tests.api.test_auth import ADMIN_KEY, KEYS, bearer, login
from tests.conftest import AppClient, AppFactory


async def test_unexpected_exception_is_json_500_with_request_id_and_logged_once(
    start_app: AppFactory,
) -> None:
    client = await start_app(workers_enabled=False)

    async def boom() -> None:
        raise RuntimeError("something unexpected")

    client.app.add_api_route("/boom", boom)
    with structlog.testing.capture_logs(
        processors=[structlog.contextvars.merge_contextvars]
    ) as logs:
        response = await client.get("/boom", headers={"X-Request-ID": "req-0042"})

    assert response.status_code == 500
    assert response.json() == {"detail": "internal error", "request_id": "req-0042"}
    assert response.headers["x-request-id"] == "req-0042"
    (failed,) = [e for e in logs if e["event"] == "request_failed"]
    assert (failed["log_level"], failed["request_id"], failed["route"]) == (
        "error",
        "req-0042",
        "/boom",
    )
    assert failed["exc_info"] is True  # rendered as the traceback by format_exc_info
    assert [e["log_level"] for e in logs if e["log_level"] == "error"] == ["error"]
    (request,) = [e for e in logs if e["event"] == "http_request"]
    assert request["status"] == 500


class DownLoops:
    """A supervisor whose ``listen`` loop is down with a message that must not leak."""

    def down(self) -> dict[str, str]:
        return {"listen": "down (last error ConnectionRefusedError('secret-host:5432'))"}

    def failing_for(self, seconds: float) -> dict[str, str]:
        return {"listen": "failing for 90 s (last error ConnectionRefusedError('secret-host'))"}


def with_down_loops(client: AppClient) -> None:
    state = state_of(client.app)
    assert state.runtime is not None
    state.runtime = dataclasses.replace(state.runtime, loops=DownLoops())


async def test_readyz_loop_down_names_it_without_its_error(start_app: AppFactory) -> None:
    client = await start_app(workers_enabled=False)
    with_down_loops(client)
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["loops"] == "down: listen"
    assert "secret-host" not in response.text


async def test_healthz_failing_loop_names_it_without_its_error(start_app: AppFactory) -> None:
    client = await start_app(workers_enabled=False)
    with_down_loops(client)
    response = await client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"loop:listen": "failing: restart the process"},
    }


# --- /docs


def references(page: str) -> list[str]:
    """Every URL a page loads: src, href, and Swagger UI's ``url:``."""
    return re.findall(r'(?:src|href)="([^"]+)"', page) + re.findall(r"url: '([^']+)'", page)


async def test_docs_reference_no_external_url_and_assets_are_served(
    start_app: AppFactory,
) -> None:
    client = await start_app(workers_enabled=False)
    page = await client.get("/docs")
    assert page.status_code == 200
    urls = references(page.text)
    assert sorted(urls) == [
        "/docs/static/favicon.png",
        "/docs/static/swagger-ui-bundle.js",
        "/docs/static/swagger-ui.css",
        "/openapi.json",
    ]
    for url in urls:
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 100, url
    assert '"validatorUrl": null' in page.text  # no badge from validator.swagger.io
    assert (await client.get("/redoc")).status_code == 404


async def test_docs_csp_allows_its_own_inline_script_by_hash_and_nothing_else(
    start_app: AppFactory,
) -> None:
    client = await start_app(workers_enabled=False)
    page = await client.get("/docs")
    (inline,) = re.findall(r"<script>(.*?)</script>", page.text, re.DOTALL)
    digest = base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
    policy = dict(
        part.strip().split(" ", 1) for part in page.headers["content-security-policy"].split(";")
    )
    assert policy["script-src"] == f"'self' 'sha256-{digest}'"
    assert policy["default-src"] == "'none'"
    assert policy["connect-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert page.headers["x-content-type-options"] == "nosniff"


# --- Cache-Control on the dashboard


async def test_every_dashboard_response_is_no_store_static_files_are_not(
    start_app: AppFactory,
) -> None:
    client = await start_app(api_keys=KEYS, workers_enabled=False)
    job_id = (await client.post("/jobs", json={}, headers=bearer(ADMIN_KEY))).json()["id"]
    token, _ = await login(client, ADMIN_KEY)
    cookie = {"Cookie": f"jq_session={token}"}
    requests: list[tuple[str, str, dict[str, Any], int]] = [
        ("GET", "/ui", cookie, 200),
        ("GET", "/ui/jobs", cookie, 200),
        ("GET", f"/ui/jobs/{job_id}", cookie, 200),
        ("GET", "/ui/jobs/0", cookie, 404),
        ("GET", "/ui/api/overview", cookie, 200),
        ("GET", f"/ui/api/jobs/{job_id}", cookie, 200),
        ("GET", "/ui/api/jobs", {}, 401),
        ("GET", "/ui", {}, 303),
        ("GET", "/ui/login", {}, 200),
        ("POST", "/ui/login", {}, 401),
        ("GET", "/ui/no-such-page", cookie, 404),
    ]
    for method, path, headers, status in requests:
        data = {"key": "x"} if method == "POST" else None
        response = await client.request(method, path, headers=headers, data=data)
        assert response.status_code == status, (path, response.text)
        assert response.headers.get_list("cache-control") == ["no-store"], path
    static = await client.get("/ui/static/dashboard.css")
    assert static.status_code == 200
    assert "no-store" not in static.headers.get("cache-control", "")
    assert "cache-control" not in (await client.get("/healthz")).headers


async def test_dashboard_without_keys_is_no_store_too(client: httpx.AsyncClient) -> None:
    response = await client.get("/ui")
    assert (response.status_code, response.headers["cache-control"]) == (200, "no-store")
