"""Request middleware (plain ASGI, no per-request task): a request id, HTTP metrics, one log
event per request.

The request id is the incoming ``X-Request-ID`` when it is a sane token (1-128 characters of
``A-Za-z0-9._-``), else a new random one; it is returned in the ``X-Request-ID`` response
header and bound to every log event of the request (structlog contextvars).
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobqueue.metrics import Metrics

log = structlog.get_logger("jobqueue.http")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


def request_id_of(scope: Scope) -> str:
    """The request's id: a sane incoming ``X-Request-ID``, or a new 32-hex-digit one."""
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text: str = value.decode("latin-1")
            if _REQUEST_ID.match(text):
                return text
    return uuid.uuid4().hex


class RequestMiddleware:
    """Wraps the app: request id, ``jobqueue_http_*`` metrics by route template, and an
    ``http_request`` log event (method, route, status, duration_ms).

    Args:
        app: the ASGI app.
        metrics: the app's metrics.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        header = (b"x-request-id", request_id.encode())
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), header]}
            await send(message)

        started = time.perf_counter()
        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                self._record(scope, status, time.perf_counter() - started)

    def _record(self, scope: Scope, status: int, duration: float) -> None:
        route: Any = scope.get("route")
        # The template (/jobs/{job_id}), never the raw path: label values must stay few.
        template = getattr(route, "path", None) or "unmatched"
        method = scope.get("method", "")
        self.metrics.http_requests.labels(method, template, str(status)).inc()
        self.metrics.http_duration.labels(method, template).observe(duration)
        log.info(
            "http_request",
            method=method,
            route=template,
            status=status,
            duration_ms=round(duration * 1000, 3),
        )
