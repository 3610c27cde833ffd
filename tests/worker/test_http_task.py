"""The ``http`` task against a real local HTTP server: through the worker pool and API (with
PostgreSQL), and called directly for the finer points (no database)."""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import json
import shutil
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from jobqueue.errors import Discard, RetryLater
from jobqueue.tasks.http import (
    DeliveryError,
    DeliveryTimeout,
    HttpTaskConfig,
    deliver,
    make_http_task,
    make_payload_check,
    parse_payload,
    resolve_target,
    send_pinned,
)
from jobqueue.tasks.registry import JobContext, TaskRegistry, default_registry
from tests.conftest import AppFactory
from tests.helpers import wait_for_status
from tests.worker.hook_server import HookServer, Received, Reply

SECRET_KEY = b"integration-test-key-0123456789!"
SECRET = "whsec_" + base64.b64encode(SECRET_KEY).decode()


@pytest.fixture
async def hook() -> AsyncIterator[HookServer]:
    server = HookServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def registry() -> TaskRegistry:
    """Built-ins plus four ``http`` task variants (names that cannot clash with ``http``)."""
    tasks = default_registry.copy()
    config = HttpTaskConfig(allow_private=True, signing_secret=SECRET)
    tasks.register("http_test", make_http_task(config))
    tasks.register("http_strict", make_http_task(HttpTaskConfig(signing_secret=SECRET)))
    allowlist = HttpTaskConfig(allowed_hosts=("*.example.com",), allow_private=True)
    tasks.register("http_allowlist", make_http_task(allowlist))
    strict = HttpTaskConfig(signing_secret=SECRET)
    tasks.register("http_checked", make_http_task(strict), validate=make_payload_check(strict))
    return tasks


async def _create(
    client: httpx.AsyncClient, payload: dict[str, Any], task: str = "http_test", attempts: int = 3
) -> int:
    body = {"task": task, "payload": payload, "max_attempts": attempts}
    response = await client.post("/jobs", json=body)
    assert response.status_code == 201, response.text
    job_id: int = response.json()["id"]
    return job_id


def _expected_signature(received: Received) -> str:
    signed = f"{received.headers['webhook-id']}.{received.headers['webhook-timestamp']}."
    digest = hmac.new(SECRET_KEY, signed.encode() + received.body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


# --- through the worker pool and the API --------------------------------------------------------


async def test_http_200_job_done_with_status_headers_body(
    start_app: AppFactory, hook: HookServer
) -> None:
    hook.default = Reply(200, {"x-reply": "yes", "content-type": "text/plain"}, b"thanks")
    client = await start_app()
    url = hook.url("/hook?x=1", host="localhost")
    job_id = await _create(client, {"url": url, "body": {"event": "paid"}})
    job = await wait_for_status(client, job_id, {"done"})
    result = job["result"]
    assert result["status"] == 200
    assert result["headers"]["x-reply"] == "yes"
    assert (result["body"], result["truncated"]) == ("thanks", False)
    assert result["elapsed_ms"] > 0
    [received] = hook.received
    assert (received.method, received.target) == ("POST", "/hook?x=1")
    assert received.headers["host"] == f"localhost:{hook.port}"
    assert received.headers["content-type"] == "application/json"
    assert json.loads(received.body) == {"event": "paid"}


async def test_http_500_then_200_done_after_two_attempts(
    start_app: AppFactory, hook: HookServer
) -> None:
    hook.replies = [Reply(500, body=b"boom")]
    client = await start_app()
    job_id = await _create(client, {"url": hook.url()})
    job = await wait_for_status(client, job_id, {"done"})
    assert job["attempts"] == 2
    assert job["result"]["status"] == 200
    assert len(hook.received) == 2


async def test_http_retries_keep_webhook_id_and_sign_each_attempt(
    start_app: AppFactory, hook: HookServer
) -> None:
    hook.replies = [Reply(503)]
    client = await start_app()
    job_id = await _create(client, {"url": hook.url()})
    await wait_for_status(client, job_id, {"done"})
    first, second = hook.received
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == f"job_{job_id}"
    for received in (first, second):
        assert received.headers["webhook-signature"] == _expected_signature(received)


async def test_http_signature_verified_by_independent_hmac(
    start_app: AppFactory, hook: HookServer
) -> None:
    client = await start_app()
    job_id = await _create(client, {"url": hook.url(), "body": "raw text body, é"})
    await wait_for_status(client, job_id, {"done"})
    [received] = hook.received
    assert received.body == "raw text body, é".encode()
    assert abs(int(received.headers["webhook-timestamp"]) - time.time()) < 60
    assert hmac.compare_digest(received.headers["webhook-signature"], _expected_signature(received))


async def test_http_429_retry_after_waits_before_second_attempt(
    start_app: AppFactory, hook: HookServer
) -> None:
    hook.replies = [Reply(429, {"retry-after": "1"})]
    client = await start_app()
    job_id = await _create(client, {"url": hook.url()})
    job = await wait_for_status(client, job_id, {"done"})
    assert job["attempts"] == 2
    first, second = hook.received
    assert second.at - first.at >= 0.9


async def test_http_slow_response_times_out_retried_then_failed(
    start_app: AppFactory, hook: HookServer
) -> None:
    hook.default = Reply(delay_seconds=5.0)
    client = await start_app()
    job_id = await _create(client, {"url": hook.url(), "timeout_seconds": 0.3}, attempts=2)
    job = await wait_for_status(client, job_id, {"failed"})
    assert job["attempts"] == 2
    assert job["error"].startswith("DeliveryTimeout: POST http://127.0.0.1:")
    assert "timed out" in job["error"]
    assert len(hook.received) == 2


async def test_http_404_failed_at_once(start_app: AppFactory, hook: HookServer) -> None:
    hook.default = Reply(404, body=b"no such hook")
    client = await start_app()
    job_id = await _create(client, {"url": hook.url()})
    job = await wait_for_status(client, job_id, {"failed"})
    assert job["attempts"] == 1
    assert "answered 404 Not Found: 'no such hook'" in job["error"]


async def test_http_loopback_target_not_allowed_private_refused_nothing_sent(
    start_app: AppFactory, hook: HookServer
) -> None:
    client = await start_app()
    job_id = await _create(client, {"url": hook.url()}, task="http_strict")
    job = await wait_for_status(client, job_id, {"failed"})
    assert job["attempts"] == 1
    assert (
        "refused: 127.0.0.1 resolves to 127.0.0.1, a loopback address; "
        "set JOBQUEUE_HTTP_ALLOW_PRIVATE=true to allow"
    ) in job["error"]
    assert hook.received == []


async def test_http_host_not_in_allowed_hosts_failed_nothing_sent(
    start_app: AppFactory, hook: HookServer
) -> None:
    client = await start_app()
    job_id = await _create(client, {"url": hook.url()}, task="http_allowlist")
    job = await wait_for_status(client, job_id, {"failed"})
    assert job["attempts"] == 1
    assert "host '127.0.0.1' is not in JOBQUEUE_HTTP_ALLOWED_HOSTS" in job["error"]
    assert hook.received == []


async def test_http_bad_payload_failed_at_once(start_app: AppFactory) -> None:
    client = await start_app()
    job_id = await _create(client, {"url": "ftp://example.com/x"})
    job = await wait_for_status(client, job_id, {"failed"})
    assert job["attempts"] == 1
    assert "payload.url must be an http:// or https:// URL" in job["error"]


async def test_http_literal_private_address_refused_at_enqueue_422(
    start_app: AppFactory, db: asyncpg.Connection
) -> None:
    client = await start_app(workers_enabled=False)
    for url in ("http://0x7f000001:8080/hook", "http://[::ffff:169.254.169.254]/latest"):
        response = await client.post(
            "/jobs", json={"task": "http_checked", "payload": {"url": url}}
        )
        assert response.status_code == 422, response.text
        assert response.json()["detail"].startswith(
            "payload for task 'http_checked': payload.url names the IP address "
        )
        assert response.json()["detail"].endswith(
            "only public addresses may be called (set JOBQUEUE_HTTP_ALLOW_PRIVATE=true to allow)"
        )
    assert await db.fetchval("SELECT count(*) FROM jobs") == 0


@pytest.mark.parametrize(
    ("payload", "detail"),
    [
        (
            {"url": "https://hooks.example.com/", "headers": {"x-sig": "a\u0085b"}},
            "payload.headers has an invalid header 'x-sig': its value holds a non-ASCII "
            "character, U+0085, at index 1 (RFC 9110, section 5.5: visible ASCII, with spaces "
            "and tabs only inside)",
        ),
        (
            {"url": "https://hooks.example.com/", "headers": {"Accept-Encoding": "br"}},
            "payload.headers must not set 'Accept-Encoding': the task sends its own (it decodes "
            "at most one content coding)",
        ),
        (
            {"url": "https://hooks.example.com:0/"},
            "payload.url has port 0: a port is 1 to 65535",
        ),
    ],
)
async def test_http_bad_headers_or_port_refused_at_enqueue_422(
    start_app: AppFactory, payload: dict[str, Any], detail: str
) -> None:
    client = await start_app(workers_enabled=False)
    response = await client.post("/jobs", json={"task": "http_checked", "payload": payload})
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == f"payload for task 'http_checked': {detail}"


# --- the task called directly (no database) -----------------------------------------------------


async def _run(payload: dict[str, Any], **config: Any) -> dict[str, Any]:
    task = make_http_task(HttpTaskConfig(allow_private=True, **config))
    return await task(JobContext(1, "http", "default", payload, 1, 3))


async def test_http_large_body_cut_at_max_response_bytes(hook: HookServer) -> None:
    hook.default = Reply(body=("é" * 100_000).encode())  # 2 bytes per character
    result = await _run({"url": hook.url()}, max_response_bytes=1001)
    assert result["truncated"] is True
    assert result["body"] == "é" * 500  # the half character at the cut is dropped


async def test_http_redirect_not_followed_discarded(hook: HookServer) -> None:
    hook.default = Reply(302, {"location": "http://169.254.169.254/latest"})
    with pytest.raises(Discard, match=r"answered 302, a redirect to http://169\.254\.169\.254"):
        await _run({"url": hook.url()})
    assert len(hook.received) == 1


async def test_http_503_retry_after_http_date_raises_retry_later(hook: HookServer) -> None:
    when = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 120))
    hook.default = Reply(503, {"retry-after": when})
    with pytest.raises(RetryLater) as caught:
        await _run({"url": hook.url()})
    assert 100 <= caught.value.delay_seconds <= 121


async def test_http_500_without_retry_after_raises_delivery_error(hook: HookServer) -> None:
    hook.default = Reply(500)
    with pytest.raises(DeliveryError, match="answered 500 Internal Server Error"):
        await _run({"url": hook.url()})


async def test_http_connection_refused_raises_delivery_error(hook: HookServer) -> None:
    url = hook.url()
    await hook.stop()
    with pytest.raises(DeliveryError, match="ConnectError"):
        await _run({"url": url})
    await hook.start()  # the fixture stops it again


async def test_http_timeout_raises_delivery_timeout(hook: HookServer) -> None:
    hook.default = Reply(delay_seconds=5.0)
    with pytest.raises(DeliveryTimeout, match="timed out"):
        await _run({"url": hook.url(), "timeout_seconds": 0.2})


# --- an injected transport (httpx.MockTransport): what exactly is sent -----------------------


def _mock(handler: Callable[[httpx.Request], httpx.Response], **config: Any) -> HttpTaskConfig:
    return HttpTaskConfig(
        allow_private=True, transport_factory=lambda _tls: httpx.MockTransport(handler), **config
    )


def _ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, stream=httpx.ByteStream(b"ok"))


async def test_http_request_pinned_to_checked_address_with_host_sni_and_headers() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return _ok(request)

    task = make_http_task(_mock(handler, signing_secret=SECRET))
    payload = {"url": "http://localhost:8443/hook?x=1", "headers": {"X-Kind": "a"}, "body": [1]}
    result = await task(JobContext(7, "http", "default", payload, 1, 3))
    assert (result["status"], result["body"], result["truncated"]) == (200, "ok", False)
    [request] = seen
    [address, *_] = await resolve_target("localhost", 8443, allow_private=True)
    assert request.url == httpx.URL("http://localhost:8443/hook?x=1").copy_with(host=address)
    assert request.extensions["sni_hostname"] == "localhost"
    assert request.content == b"[1]"
    headers = dict(request.headers)
    signature = headers.pop("webhook-signature")
    timestamp = headers.pop("webhook-timestamp")
    assert headers == {
        "host": "localhost:8443",
        "accept": "*/*",
        "accept-encoding": "identity",
        "connection": "keep-alive",
        "user-agent": "jobqueue-http/1",
        "x-kind": "a",
        "content-type": "application/json",
        "webhook-id": "job_7",
        "content-length": "3",
    }
    signed = f"job_7.{timestamp}.".encode() + b"[1]"
    digest = hmac.new(SECRET_KEY, signed, hashlib.sha256).digest()
    assert signature == "v1," + base64.b64encode(digest).decode()


async def test_http_transport_factory_called_once_per_delivery_with_tls_context() -> None:
    contexts: list[ssl.SSLContext] = []

    def factory(tls: ssl.SSLContext) -> httpx.AsyncBaseTransport:
        contexts.append(tls)
        return httpx.MockTransport(_ok)

    task = make_http_task(HttpTaskConfig(allow_private=True, transport_factory=factory))
    for attempt in (1, 2):
        await task(JobContext(1, "http", "default", {"url": "http://127.0.0.1/"}, attempt, 3))
    assert len(contexts) == 2
    assert contexts[0] is contexts[1]  # one TLS context, made on first use
    assert isinstance(contexts[0], ssl.SSLContext)


async def test_http_first_address_refuses_next_address_used() -> None:
    tried: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        tried.append(request.url.host)
        if request.url.host == "127.0.0.2":
            raise httpx.ConnectError("connection refused", request=request)
        return _ok(request)

    spec = parse_payload({"url": "http://hooks.example.com/"}, 5.0)
    tls = ssl.create_default_context()
    result = await send_pinned(spec, {}, ["127.0.0.2", "127.0.0.1"], _mock(handler), tls)
    # A refused connect sent nothing, so the next checked address is tried.
    assert result["status"] == 200
    assert tried == ["127.0.0.2", "127.0.0.1"]


async def test_http_error_after_connect_not_retried_on_next_address() -> None:
    tried: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        tried.append(request.url.host)
        raise httpx.ReadError("connection reset", request=request)

    spec = parse_payload({"url": "http://hooks.example.com/"}, 5.0)
    tls = ssl.create_default_context()
    with pytest.raises(httpx.ReadError):  # the request may have arrived: never sent twice
        await send_pinned(spec, {}, ["127.0.0.2", "127.0.0.1"], _mock(handler), tls)
    assert tried == ["127.0.0.2"]


async def test_http_mock_redirect_not_followed() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(307, headers={"location": "http://10.0.0.1/"})

    task = make_http_task(_mock(handler))
    with pytest.raises(Discard, match=r"answered 307, a redirect to http://10\.0\.0\.1/"):
        await task(JobContext(1, "http", "default", {"url": "http://127.0.0.1/"}, 1, 3))
    assert len(seen) == 1


@pytest.mark.parametrize(
    ("status", "headers", "raw", "signal", "message"),
    [
        (
            500,
            {"content-encoding": "gzip"},
            gzip.compress(b"database is down"),
            DeliveryError,
            "POST http://127.0.0.1 answered 500 Internal Server Error: 'database is down'",
        ),
        (
            404,
            {"content-encoding": "gzip, gzip"},
            gzip.compress(gzip.compress(b"x")),
            Discard,
            "POST http://127.0.0.1 answered 404 Not Found: (body not shown: Content-Encoding "
            "'gzip, gzip', 2 stacked codings: at most one is decoded)",
        ),
        (
            200,
            {"content-encoding": "zstd"},
            b"(zstd data)",
            Discard,
            "POST http://127.0.0.1 answered 200 with Content-Encoding 'zstd', which is not "
            "supported (supported: gzip, deflate",
        ),
        (
            200,
            {"content-encoding": "gzip"},
            gzip.compress(b"cut short")[:-5],
            DeliveryError,
            "POST http://127.0.0.1 answered 200, but the gzip data ends before its end",
        ),
    ],
)
async def test_http_coded_answers_become_signals(
    status: int, headers: dict[str, str], raw: bytes, signal: type[Exception], message: str
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, headers=headers, stream=httpx.ByteStream(raw))

    task = make_http_task(_mock(handler))
    with pytest.raises(signal) as caught:
        await task(JobContext(1, "http", "default", {"url": "http://127.0.0.1/"}, 1, 3))
    assert type(caught.value) is signal
    assert str(caught.value).startswith(message)


# --- TLS: the pinned address keeps the host name for SNI and certificate checks ----------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for ``localhost`` (made with the openssl command)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
async def tls_hook(certificate: tuple[Path, Path]) -> AsyncIterator[tuple[HookServer, list[str]]]:
    names: list[str] = []
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    context.sni_callback = lambda _sock, name, _ctx: names.append(str(name)) or None  # type: ignore[func-returns-value]
    server = HookServer(context)
    await server.start()
    yield server, names
    await server.stop()


async def test_http_https_pinned_address_keeps_sni_and_verifies_name(
    tls_hook: tuple[HookServer, list[str]], certificate: tuple[Path, Path]
) -> None:
    server, names = tls_hook
    spec = parse_payload({"url": server.url(host="localhost", scheme="https")}, 5.0)
    trust = ssl.create_default_context(cafile=str(certificate[0]))
    result = await deliver(spec, {}, HttpTaskConfig(allow_private=True), trust)
    assert result["status"] == 200
    assert names == ["localhost"]
    assert server.received[0].headers["host"] == f"localhost:{server.port}"


async def test_http_https_certificate_for_other_name_rejected(
    tls_hook: tuple[HookServer, list[str]], certificate: tuple[Path, Path]
) -> None:
    server, _ = tls_hook
    spec = parse_payload({"url": server.url(host="127.0.0.1", scheme="https")}, 5.0)
    trust = ssl.create_default_context(cafile=str(certificate[0]))
    with pytest.raises(DeliveryError, match="CERTIFICATE_VERIFY_FAILED"):
        await deliver(spec, {}, HttpTaskConfig(allow_private=True), trust)
    assert server.received == []
