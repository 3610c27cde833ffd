"""HTTP protocol details on a real ``jobqueue serve``, over raw sockets (what httpx would never
send): an absolute-form request target is checked by its own host (RFC 9112 section 3.2.2), two
Host lines are a 400 (RFC 9112 section 3.2), HEAD is answered without content, and a 4,301-digit
job id is a 422, not a 500."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.e2e.procs import Server, ServerFactory
from tests.e2e.test_edge_limits import connect, read_status


async def exchange(server: Server, head: str) -> tuple[int, bytes, bytes]:
    """Send one request ``head`` (``Connection: close`` is added) and read the whole answer:
    its status, its head and its content."""
    reader, writer = await connect(server)
    writer.write(head.replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n").encode("latin-1"))
    status, data = await read_status(reader)
    writer.close()
    answer_head, _, content = data.partition(b"\r\n\r\n")
    return status, answer_head, content


@pytest.fixture
async def server(database_url: str, start_server: ServerFactory) -> Server:
    """A server without keys (loopback Host names only), API only."""
    return await start_server.start(
        {"JOBQUEUE_DATABASE_URL": database_url, "JOBQUEUE_WORKERS_ENABLED": "false"}
    )


async def test_serve_absolute_form_target_with_foreign_host_is_421(server: Server) -> None:
    status, _, content = await exchange(
        server, "GET http://evil.com/jobs HTTP/1.1\r\nHost: localhost\r\n\r\n"
    )
    assert status == 421
    assert json.loads(content)["detail"].startswith("this service has no API keys")


async def test_serve_absolute_form_target_with_loopback_host_is_served(server: Server) -> None:
    port = httpx.URL(server.url).port
    status, _, content = await exchange(
        server, f"GET http://127.0.0.1:{port}/healthz HTTP/1.1\r\nHost: evil.com\r\n\r\n"
    )
    assert (status, json.loads(content)["status"]) == (200, "ok")


async def test_serve_absolute_form_target_with_two_host_lines_is_400(server: Server) -> None:
    status, _, _ = await exchange(
        server, "GET http://localhost/jobs HTTP/1.1\r\nHost: localhost\r\nHost: localhost\r\n\r\n"
    )
    assert status == 400


async def test_serve_two_host_lines_loopback_first_is_400(server: Server) -> None:
    status, _, content = await exchange(
        server, "GET /jobs HTTP/1.1\r\nHost: localhost\r\nHost: evil.com\r\n\r\n"
    )
    assert (status, json.loads(content)) == (
        400,
        {"detail": "the request has 2 Host header lines; send exactly one (RFC 9112 section 3.2)"},
    )


async def test_serve_request_without_host_is_400(server: Server) -> None:
    status, _, _ = await exchange(server, "GET /healthz HTTP/1.1\r\n\r\n")
    assert status == 400


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
async def test_serve_head_on_health_route_is_200_without_content(server: Server, path: str) -> None:
    status, head, content = await exchange(
        server, f"HEAD {path} HTTP/1.1\r\nHost: localhost\r\n\r\n"
    )
    get_status, _, get_content = await exchange(
        server, f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n"
    )
    assert (status, content) == (get_status, b"") == (200, b"")
    assert f"\r\ncontent-length: {len(get_content)}\r\n".encode() in head + b"\r\n"


async def test_serve_4301_digit_job_id_is_422(server: Server) -> None:
    status, _, content = await exchange(
        server, f"GET /jobs/{'9' * 4301} HTTP/1.1\r\nHost: localhost\r\n\r\n"
    )
    assert status == 422
    assert json.loads(content)["detail"][0]["loc"] == ["path", "job_id"]
