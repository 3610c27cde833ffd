"""A tiny real HTTP/1.1 server for the ``http`` task's tests: answers scripted replies and
records what it received."""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any


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
