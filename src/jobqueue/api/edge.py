"""The HTTP connection guard: uvicorn's httptools protocol, with the bounds it lacks.

uvicorn 0.54 with httptools (what ``uvicorn[standard]`` installs, and the fast parser) has a
keep-alive timeout and a concurrency limit, and nothing else at the connection level:

- **No timeout for a request's head.** A connection that sends nothing, or trickles its request
  line and headers a byte at a time, is kept forever (the keep-alive timer only starts after a
  response): 19,980 such connections once took every file descriptor of the process, and the
  service answered nothing for 30 s and logged nothing.
- **No bound on the head's size or header count, and a quadratic parser.** httptools appends
  each piece of a header value to the bytes it has (``bytes += piece``): a 100 MB header took
  23.6 s of CPU, and 1 MB headers and 100,000 headers were accepted.
  (``h11_max_incomplete_event_size`` bounds the h11 implementation only.)
- **The concurrency limit counts idle connections.** Past ``limit_concurrency`` connections a
  request gets 503, so connections that send nothing lock out real clients.

:func:`guarded_protocol` makes a subclass of uvicorn's ``HttpToolsProtocol`` (selected with
``uvicorn.run(http=...)``) that

1. closes a connection whose request head is not complete ``headers_timeout_seconds`` after the
   connection was accepted, or after the head's first byte on a kept-alive connection (408 when
   part of a head arrived);
2. feeds the parser at most ``max_header_bytes`` of a head and answers 431 when it is not
   complete by then, so the parser's quadratic append never runs past that bound; and answers
   431 at the header after the ``max_headers``-th, raising from the parser's callback so the
   rest of the head is never parsed;
3. when the process is at ``limit_concurrency`` connections, closes the idle connection that has
   waited longest (no request in progress: accepted and silent, or kept alive) to make room for
   the new one; only when every connection has a request in progress does a request get
   uvicorn's 503;
4. for an absolute-form request target (``GET http://example.com/jobs HTTP/1.1``), puts the
   target's authority in the ``Host`` field lines the app sees (RFC 9112 section 3.2.2):
   uvicorn keeps the target's path only, so the app's Host checks (``api/guard.py``) would
   otherwise check a ``Host`` that the request itself overrides.

After a 431 the connection stops reading, half-closes and is closed a second later (a lingering
close: closing at once with unread bytes sends a TCP reset, which can destroy the 431 before the
client reads it). The same holds for an answer the app gives before it has read the whole body
(a 401 before the body, a 413 once the body passed its limit): the connection half-closes and
reads and drops what the client still sends, for at most a second, so the client reads the
answer instead of a reset. Each refusal is counted in ``jobqueue_http_refused_total{reason}``
and logged as ``http_refused`` with its reason and the client's address, at most once a second
per reason (``api/refusals.py``). The body's size, time and budget are bounded in the app
(``api/limits.py``), where the app's reading of the body is seen.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from jobqueue.api.refusals import EdgeEvents
from jobqueue.metrics import Metrics

LINGER_SECONDS = 1.0
"""How long a refused connection stays half-closed before it is closed, seconds."""


@dataclass(frozen=True)
class EdgeLimits:
    """The connection-level limits (see ``Settings`` for each one's meaning and default).

    Attributes:
        limit_concurrency: connections or requests in progress at once.
        keep_alive_seconds: an idle kept-alive connection is closed after this, seconds.
        headers_timeout_seconds: a request head must be complete within this, seconds.
        max_header_bytes: request line and headers, bytes.
        max_headers: header fields per request.
    """

    limit_concurrency: int
    keep_alive_seconds: int
    headers_timeout_seconds: float
    max_header_bytes: int
    max_headers: int


class _TooManyHeaders(Exception):
    """Raised from the parser's header callback: stops the parse at once."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a head timeout, head bounds and idle eviction; made
    per server by :func:`guarded_protocol`, which sets the class attributes."""

    limits: ClassVar[EdgeLimits]
    events: ClassVar[EdgeEvents]
    idle: ClassVar[dict[GuardedHttpToolsProtocol, None]]
    """Connections with no request in progress, the longest waiting first."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._in_head = True
        self._head_bytes = 0
        self._header_count = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._too_many_headers = False
        self._refused = False
        self._body_pending = False
        self._discarding = False

    # --- the connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.transport = cast(asyncio.Transport, _LingeringTransport(transport, self))
        self._make_room()
        self.idle[self] = None
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        self.idle.pop(self, None)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused or self._discarding:
            return
        if not self._in_head:
            super().data_received(data)
            return
        room = self.limits.max_header_bytes - self._head_bytes
        if len(data) <= room:
            self._head_bytes += len(data)
            super().data_received(data)
            return
        # Only `room` more bytes may belong to the head: parse those, and the rest only if
        # they completed it (the rest is then body, or the next request).
        view = memoryview(data)
        self._head_bytes += room
        if room > 0:
            super().data_received(view[:room])  # type: ignore[arg-type]
        if self._refused or self.transport.is_closing():
            return
        if self._in_head:
            self._refuse(
                431,
                "headers_too_large",
                f"the request line and headers are over {self.limits.max_header_bytes} bytes "
                "(JOBQUEUE_MAX_HEADER_BYTES)",
            )
            return
        super().data_received(view[room:])

    # --- parser callbacks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_count = 0
        self._arm_head_timer()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.limits.max_headers:
            self._too_many_headers = True
            raise _TooManyHeaders
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._body_pending = True
        self._cancel_head_timer()
        self.idle.pop(self, None)
        if self.url[:1] not in (b"/", b"*"):
            self._host_from_target()
        limit = self.limit_concurrency
        if limit is not None and (len(self.connections) >= limit or len(self.tasks) >= limit):
            # uvicorn answers this request 503 (and logs a line per request, which the log
            # filter drops in favour of this throttled event).
            self.events.refused(
                "concurrency_limit",
                self.client,
                connections=len(self.connections),
                requests=len(self.tasks),
                limit=limit,
            )
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._body_pending = False
        super().on_message_complete()
        self._in_head = True
        self._head_bytes = 0

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.timeout_keep_alive_task is not None:
            self.idle[self] = None  # kept alive, waiting for the next request

    def send_400_response(self, msg: str) -> None:
        if self._too_many_headers:
            self._refuse(
                431,
                "too_many_headers",
                f"the request has more than {self.limits.max_headers} header fields "
                "(JOBQUEUE_MAX_HEADERS)",
            )
            return
        super().send_400_response(msg)

    def _host_from_target(self) -> None:
        """An absolute-form request target (``GET http://example.com/jobs HTTP/1.1``): its
        authority replaces the value of every ``Host`` field line (RFC 9112 section 3.2.2: the
        server "MUST ignore the received Host header field (if any) and instead use the host
        information of the request-target"), so that the app's Host checks see the host the
        request names. The number of ``Host`` lines stays as sent, for the app's check of it
        (RFC 9112 section 3.2). A target that is not a URL is left to uvicorn, which refuses
        it with 400."""
        try:
            target = httptools.parse_url(self.url)
        except httptools.HttpParserInvalidURLError:
            return
        if not target.host:
            return
        host = b"[%s]" % target.host if b":" in target.host else target.host
        if target.port is not None:
            host += b":%d" % target.port
        self.headers[:] = [
            (name, host if name == b"host" else value) for name, value in self.headers
        ]

    # --- the guards

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(
                self.limits.headers_timeout_seconds, self._head_timed_out
            )

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or self._refused:
            return
        self.events.refused(
            "headers_timeout",
            self.client,
            received_bytes=self._head_bytes,
            timeout_seconds=self.limits.headers_timeout_seconds,
        )
        if self._head_bytes:
            self._write_error(
                408,
                f"the request line and headers did not arrive within "
                f"{self.limits.headers_timeout_seconds:g} s (JOBQUEUE_HEADERS_TIMEOUT_SECONDS)",
            )
        self.transport.close()

    def _make_room(self) -> None:
        """At the connection limit, close the longest-waiting idle connection."""
        limit = self.limit_concurrency
        if limit is None or len(self.connections) < limit:
            return
        victim = next(iter(self.idle), None)
        if victim is None:
            return  # every connection has a request in progress: this one's gets the 503
        del self.idle[victim]
        self.connections.discard(victim)  # now, not when its close completes
        victim._cancel_head_timer()
        self.events.refused("idle_evicted", victim.client, connections=len(self.connections))
        victim.transport.close()

    def linger_or_close(self, transport: asyncio.Transport) -> None:
        """Close now, or, while the request's body is still arriving, half-close, drop what
        still comes, and close after :data:`LINGER_SECONDS`."""
        if not self._body_pending or transport.is_closing():
            transport.close()
            return
        self._discarding = True
        self._cancel_head_timer()
        if transport.can_write_eof():
            transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, transport.close)

    def _refuse(self, status: int, reason: str, detail: str) -> None:
        self._refused = True
        self._cancel_head_timer()
        self.events.refused(reason, self.client)
        self._write_error(status, detail)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.transport.pause_reading()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def _write_error(self, status: int, detail: str) -> None:
        body = json.dumps({"detail": detail}).encode()
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head.extend([name, b": ", value, b"\r\n"])
        head.append(
            b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
            % len(body)
        )
        self.transport.write(b"".join(head) + body)


class _LingeringTransport:
    """The connection's transport as uvicorn's request cycles see it: ``close()`` lingers while
    the request body is still arriving (see :meth:`GuardedHttpToolsProtocol.linger_or_close`);
    everything else is the transport's own."""

    def __init__(self, transport: asyncio.Transport, protocol: GuardedHttpToolsProtocol) -> None:
        self._transport = transport
        self._protocol = protocol
        self._closing = False

    def close(self) -> None:
        if not self._closing:
            self._closing = True
            self._protocol.linger_or_close(self._transport)

    def is_closing(self) -> bool:
        return self._closing or self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def guarded_protocol(limits: EdgeLimits, metrics: Metrics | None) -> type[HttpToolsProtocol]:
    """A :class:`GuardedHttpToolsProtocol` subclass bound to ``limits`` (one per server: its
    idle-connection list is shared by that server's connections only)."""
    return type(
        "JobqueueHttpProtocol",
        (GuardedHttpToolsProtocol,),
        {"limits": limits, "events": EdgeEvents(metrics), "idle": {}},
    )
