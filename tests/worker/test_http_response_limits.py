"""The ``http`` task against compressed answers from a real local HTTP server: gzip and deflate
bodies decoded, and decompression bombs (1 GiB of zeros, gzipped once or twice) refused with the
process's resident memory measured (psutil; Linux's peak-RSS counter when it can be reset).

Run with ``-s`` to see the measured figures."""

from __future__ import annotations

import struct
import zlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from jobqueue.errors import Discard
from jobqueue.tasks.http import HttpTaskConfig, make_http_task
from jobqueue.tasks.registry import JobContext, TaskRegistry, default_registry
from tests.conftest import AppFactory
from tests.helpers import PeakRss, wait_for_status
from tests.worker.hook_server import HookServer, Reply

GIB = 1 << 30
MIB = 1 << 20
RSS_BUDGET_BYTES = 20 * MIB


def gzip_of_zeros(size: int) -> bytes:
    """A valid gzip stream (RFC 1952) of ``size`` zero bytes (a multiple of 1 MiB), built in
    about 0.2 s per GiB: one MiB of zeros is deflated once, ending in a full flush so that the
    block stands alone, and that block is repeated."""
    assert size % MIB == 0
    zeros = bytes(MIB)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    block = deflate.compress(zeros) + deflate.flush(zlib.Z_FULL_FLUSH)
    end = deflate.flush(zlib.Z_FINISH)
    crc = 0
    for _ in range(size // MIB):
        crc = zlib.crc32(zeros, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    trailer = struct.pack("<II", crc, size & 0xFFFFFFFF)
    return header + block * (size // MIB) + end + trailer


@pytest.fixture(scope="module")
def bombs() -> dict[str, bytes]:
    """1 GiB of zeros gzipped once (about 1 MB) and twice (a few KB)."""
    single = gzip_of_zeros(GIB)
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return {"single": single, "double": compressor.compress(single) + compressor.flush()}


def test_gzip_of_zeros_is_valid_gzip() -> None:
    data = gzip_of_zeros(4 * MIB)
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)  # checks the CRC-32 and the size
    assert inflate.decompress(data) == bytes(4 * MIB)
    assert (inflate.eof, inflate.unused_data) == (True, b"")


@pytest.fixture
async def hook() -> AsyncIterator[HookServer]:
    server = HookServer()
    await server.start()
    yield server
    await server.stop()


async def _warm_task(hook: HookServer, **config: Any) -> Any:
    """The task, run once on a plain answer so that the TLS context and httpx's lazy imports are
    made before memory is measured."""
    task = make_http_task(HttpTaskConfig(allow_private=True, **config))
    hook.replies.append(Reply(body=b"warm-up"))
    await task(JobContext(1, "http", "default", {"url": hook.url()}, 1, 3))
    return task


@pytest.mark.parametrize(
    ("kind", "coding", "message"),
    [
        (
            "double",
            "gzip, gzip",
            "answered 200 with Content-Encoding 'gzip, gzip', 2 stacked codings: at most one is "
            "decoded",
        ),
        (
            "single",
            "gzip",
            "answered 200, but the response exceeds 65536 bytes after decoding "
            "(Content-Encoding: gzip); JOBQUEUE_HTTP_MAX_RESPONSE_BYTES is 65536",
        ),
        (
            "double",
            "gzip",  # one coding decoded: 1 MB of inner gzip is still over the bound
            "answered 200, but the response exceeds 65536 bytes after decoding "
            "(Content-Encoding: gzip); JOBQUEUE_HTTP_MAX_RESPONSE_BYTES is 65536",
        ),
    ],
)
async def test_http_gzip_bomb_of_1_gib_fails_within_20_mib(
    hook: HookServer,
    bombs: dict[str, bytes],
    kind: str,
    coding: str,
    message: str,
) -> None:
    task = await _warm_task(hook)
    hook.default = Reply(200, {"content-encoding": coding}, bombs[kind])
    with PeakRss() as rss, pytest.raises(Discard) as caught:
        await task(JobContext(1, "http", "default", {"url": hook.url()}, 1, 3))
    print(
        f"\n1 GiB of zeros, {kind} gzip, Content-Encoding {coding!r}, {len(bombs[kind])} bytes "
        f"sent: peak RSS growth {rss.growth / MIB:.2f} MiB"
    )
    assert str(caught.value) == f"POST http://127.0.0.1:{hook.port} {message}"
    assert rss.growth < RSS_BUDGET_BYTES, f"grew {rss.growth / MIB:.1f} MiB"


async def test_http_gzip_body_decoded(hook: HookServer) -> None:
    text = "déjà vu, " * 1000
    task = await _warm_task(hook)
    body = zlib.compress(text.encode(), wbits=16 + zlib.MAX_WBITS)
    hook.default = Reply(200, {"content-encoding": "gzip", "content-type": "text/plain"}, body)
    result = await task(JobContext(1, "http", "default", {"url": hook.url()}, 1, 3))
    assert (result["status"], result["body"], result["truncated"]) == (200, text, False)
    assert result["headers"]["content-encoding"] == "gzip"
    assert hook.received[-1].headers["accept-encoding"] == "identity"


@pytest.mark.parametrize("wbits", [zlib.MAX_WBITS, -zlib.MAX_WBITS], ids=["zlib", "raw"])
async def test_http_deflate_body_decoded(hook: HookServer, wbits: int) -> None:
    task = await _warm_task(hook)
    body = zlib.compress(b'{"accepted": true}', wbits=wbits)
    hook.default = Reply(200, {"content-encoding": "deflate"}, body)
    result = await task(JobContext(1, "http", "default", {"url": hook.url()}, 1, 3))
    assert (result["body"], result["truncated"]) == ('{"accepted": true}', False)


async def test_http_gzip_body_at_bound_kept_one_byte_over_fails(hook: HookServer) -> None:
    task = await _warm_task(hook, max_response_bytes=1000)
    hook.replies = [
        Reply(200, {"content-encoding": "gzip"}, zlib.compress(b"a" * 1000, wbits=31)),
        Reply(200, {"content-encoding": "gzip"}, zlib.compress(b"a" * 1001, wbits=31)),
    ]
    result = await task(JobContext(1, "http", "default", {"url": hook.url()}, 1, 3))
    assert (result["body"], result["truncated"]) == ("a" * 1000, False)
    with pytest.raises(Discard, match="the response exceeds 1000 bytes after decoding"):
        await task(JobContext(1, "http", "default", {"url": hook.url()}, 1, 3))


# --- through the worker pool: the bomb fails the job at its first attempt ----------------------


@pytest.fixture
def registry() -> TaskRegistry:
    tasks = default_registry.copy()
    tasks.register("http_test", make_http_task(HttpTaskConfig(allow_private=True)))
    return tasks


async def test_http_bomb_job_failed_at_first_attempt(
    start_app: AppFactory, hook: HookServer, bombs: dict[str, bytes], db: asyncpg.Connection
) -> None:
    hook.default = Reply(200, {"content-encoding": "gzip"}, bombs["single"])
    client = await start_app()
    body = {"task": "http_test", "payload": {"url": hook.url()}, "max_attempts": 3}
    response = await client.post("/jobs", json=body)
    assert response.status_code == 201, response.text
    job = await wait_for_status(client, response.json()["id"], {"failed"})
    assert job["attempts"] == 1
    assert job["error"] == (
        f"Discard: POST http://127.0.0.1:{hook.port} answered 200, but the response exceeds "
        "65536 bytes after decoding (Content-Encoding: gzip); JOBQUEUE_HTTP_MAX_RESPONSE_BYTES "
        "is 65536"
    )
