"""``jobqueue serve``'s HTTP server: uvicorn, configured for clients that may be hostile.

- httptools (the fast parser) behind the connection guard of ``api/edge.py``: a timeout for a
  request's head, bounds on its size and header count, idle connections closed first at the
  connection limit. h11 bounds a head's size on its own (``h11_max_incomplete_event_size``),
  but not the header count nor the time a head may take, and parses at a fraction of
  httptools' speed; the guard gives httptools all three.
- ``limit_concurrency`` (``JOBQUEUE_LIMIT_CONCURRENCY``): past it a request gets 503.
- ``timeout_keep_alive`` (``JOBQUEUE_KEEP_ALIVE_TIMEOUT_SECONDS``).
- No WebSocket protocol (``ws="none"``): the service has no WebSocket route, so an upgrade
  request is an ordinary HTTP request (404).
- Proxy headers are applied inside the app (``api/middleware.py: ProxyHeaders``, with
  ``FORWARDED_ALLOW_IPS``), so uvicorn's copy is off.
- The open-file soft limit is raised to the hard limit at start (each connection is a file
  descriptor; the soft limit is often 1024), and a limit still too low for
  ``JOBQUEUE_LIMIT_CONCURRENCY`` is logged.

A request's body is bounded in size, time (``JOBQUEUE_BODY_TIMEOUT_SECONDS``) and bytes in
flight by the app (``api/limits.py``). What a reverse proxy must still do (rate limits, TLS,
slow clients at scale, …) is in docs/security.md.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections.abc import Callable
from types import FrameType
from typing import Any

import structlog
import uvicorn

from jobqueue.api.edge import EdgeLimits, guarded_protocol
from jobqueue.logs import ThrottleFilter
from jobqueue.metrics import Metrics
from jobqueue.settings import Settings

log = structlog.get_logger("jobqueue.server")

SPARE_FILES = 64
"""File descriptors kept for everything but client connections (logs, the LISTEN connection,
files), on top of two per database pool slot."""
UNLIMITED_FILES_TARGET = 1 << 20
"""The soft limit asked for when the hard limit is unlimited (Linux's default ``nr_open``)."""


def edge_limits(settings: Settings) -> EdgeLimits:
    """The connection-level limits from settings."""
    return EdgeLimits(
        limit_concurrency=settings.limit_concurrency,
        keep_alive_seconds=settings.keep_alive_timeout_seconds,
        headers_timeout_seconds=settings.headers_timeout_seconds,
        max_header_bytes=settings.max_header_bytes,
        max_headers=settings.max_headers,
    )


def bind_address(host: str) -> str:
    """``host`` as uvicorn binds it: an IPv6 literal without its brackets (``[::1]`` → ``::1``),
    which is how URLs and ``JOBQUEUE_HOST`` may write it."""
    host = host.strip()
    if host.startswith("[") and host.endswith("]"):
        return host[1:-1]
    return host


def uvicorn_options(settings: Settings, metrics: Metrics | None) -> dict[str, Any]:
    """The keyword arguments for :func:`uvicorn.run`, but the app, host and port."""
    limits = edge_limits(settings)
    return {
        "http": guarded_protocol(limits, metrics),
        "ws": "none",
        "limit_concurrency": limits.limit_concurrency,
        "timeout_keep_alive": limits.keep_alive_seconds,
        "proxy_headers": False,
        "log_config": None,
        "access_log": False,
        "timeout_graceful_shutdown": None,
        "root_path": settings.root_path,
    }


class Server(uvicorn.Server):
    """uvicorn's server, telling the app the moment a stop signal arrives (``on_exit``).

    uvicorn runs the lifespan's shutdown only after every open connection has closed, and a
    ``POST /leases`` long-poll keeps its connection for up to 20 s: ``on_exit`` (the lease API's
    ``drain``) answers those at once with ``drain: true``, so the stop is not held up and remote
    workers hear it while they can still report what they hold.
    """

    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], None]) -> None:
        super().__init__(config)
        self.on_exit = on_exit
        self._loop: asyncio.AbstractEventLoop | None = None

    async def startup(self, sockets: Any = None) -> None:
        """Remember the loop (a signal handler may only schedule work on it), then start."""
        self._loop = asyncio.get_running_loop()
        await super().startup(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """SIGTERM or SIGINT: schedule ``on_exit`` on the loop, then stop as uvicorn does."""
        if self._loop is not None and not self.should_exit:
            self._loop.call_soon_threadsafe(self.on_exit)
        super().handle_exit(sig, frame)


def raise_open_file_limit() -> tuple[int, int]:
    """Raise this process's soft limit of open files (``RLIMIT_NOFILE``) to its hard limit.

    Returns:
        ``(before, after)`` soft limits (equal when it could not or need not be raised).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = UNLIMITED_FILES_TARGET if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            log.warning("open_files_limit_unchanged", soft=soft, hard=hard, error=str(exc))
            return soft, soft
    return soft, resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def prepare(settings: Settings) -> None:
    """What ``serve`` does before uvicorn starts: raise the open-file limit (and say whether
    it fits ``JOBQUEUE_LIMIT_CONCURRENCY``), and throttle uvicorn's per-request warnings."""
    before, after = raise_open_file_limit()
    needed = settings.limit_concurrency + 2 * settings.db_pool_size + SPARE_FILES
    fields = {"before": before, "after": after, "limit_concurrency": settings.limit_concurrency}
    if after != resource.RLIM_INFINITY and after < needed:
        log.warning(
            "open_files_limit_low",
            needed=needed,
            detail="connections past the open-file limit are refused by the kernel: raise "
            "the limit (ulimit -n, LimitNOFILE=) or lower JOBQUEUE_LIMIT_CONCURRENCY",
            **fields,
        )
    else:
        log.info("open_files_limit", **fields)
    # uvicorn logs one line per request refused for the concurrency limit or a malformed
    # request, both at a client's will: the edge guard logs its own throttled events instead.
    logging.getLogger("uvicorn.error").addFilter(
        ThrottleFilter(drop=("Exceeded concurrency limit.",))
    )
