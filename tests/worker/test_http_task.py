"""The ``http`` task against a real local HTTP server: through the worker pool and API (with
PostgreSQL), and called directly for the finer points (no database)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import shutil
import ssl
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobqueue.errors import Discard, RetryLater
from jobqueue.tasks.http import (
    DeliveryError,
    DeliveryTimeout,
    HttpTaskConfig,
    _send,
    deliver,
    make_http_task,
    parse_payload,
)
from jobqueue.tasks.registry import JobContext, TaskRegistry, default_registry
from tests.conftest import AppFactory
from tests.helpers import wait_for_status

SECRET_KEY = b"integration-test-key-0123456789!"
SECRET = "whsec_" + base64.b64encode(SECRET_KEY).decode()


@dataclass
class Reply:
    """What the server answers: status, headers, body, after ``delay_seconds``."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    delay_seconds: float = 0.0


@dataclass
class Received:
    """One request as the server read it; ``at`` is ``time.monotonic()``."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    at: float


class HookServer:
    """A tiny HTTP/1.1 server on 127.0.0.1: answers ``replies`` in order, then ``default``."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        self.replies: list[Reply] = []
        self.default = Reply()
        self.received: list[Received] = []
        self.port = 0
        self._handlers: set[asyncio.Task[Any]] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for handler in self._handlers:
            handler.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    def url(self, path: str = "/hook", host: str = "127.0.0.1", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}{path}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            method, target, _ = head[0].split(" ", 2)
            headers = {}
            for line in filter(None, head[1:]):
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.received.append(Received(method, target, headers, body, time.monotonic()))
            reply = self.replies.pop(0) if self.replies else self.default
            await asyncio.sleep(reply.delay_seconds)
            lines = [f"HTTP/1.1 {reply.status} {HTTPStatus(reply.status).phrase}"]
            extra = {"content-length": str(len(reply.body)), "connection": "close"}
            lines += [f"{k}: {v}" for k, v in {**extra, **reply.headers}.items()]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + reply.body)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            self._handlers.discard(handler)


@pytest.fixture
async def hook() -> AsyncIterator[HookServer]:
    server = HookServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def registry() -> TaskRegistry:
    """Built-ins plus three ``http`` task variants (names that cannot clash with ``http``)."""
    tasks = default_registry.copy()
    config = HttpTaskConfig(allow_private=True, signing_secret=SECRET)
    tasks.register("http_test", make_http_task(config))
    tasks.register("http_strict", make_http_task(HttpTaskConfig(signing_secret=SECRET)))
    allowlist = HttpTaskConfig(allowed_hosts=("*.example.com",), allow_private=True)
    tasks.register("http_allowlist", make_http_task(allowlist))
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


async def test_http_first_address_refuses_next_address_used(hook: HookServer) -> None:
    spec = parse_payload({"url": hook.url()}, 5.0)
    tls = ssl.create_default_context()
    # Nothing listens on 127.0.0.2 (the server binds 127.0.0.1 only): a refused connect sent
    # nothing, so the next checked address is tried.
    result = await _send(spec, {}, ["127.0.0.2", "127.0.0.1"], HttpTaskConfig(), tls)
    assert result["status"] == 200
    assert len(hook.received) == 1


async def test_http_timeout_raises_delivery_timeout(hook: HookServer) -> None:
    hook.default = Reply(delay_seconds=5.0)
    with pytest.raises(DeliveryTimeout, match="timed out"):
        await _run({"url": hook.url(), "timeout_seconds": 0.2})


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
