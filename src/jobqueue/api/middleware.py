"""Request middleware (plain ASGI, no per-request task): a request id, HTTP metrics, one log
event per request.

The request id is the incoming ``X-Request-ID`` when it is a sane token (1-128 characters of
``A-Za-z0-9._-``), else a new random one; it is returned in the ``X-Request-ID`` response
header and bound to every log event of the request (structlog contextvars).

The route label is the matched route's template (``/jobs/{job_id}``), never the raw path. A
router included twice (the dashboard serves the job API again under ``/ui/api``) keeps one
route object per route in FastAPI >= 0.120, whose template lacks the prefix:
:func:`route_template` puts the prefix back, so the dashboard's calls are counted apart
(``/ui/api/jobs/{job_id}``).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Sequence
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobqueue.metrics import Metrics

log = structlog.get_logger("jobqueue.http")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")

UI_API_PREFIX = "/ui/api"
"""Where the dashboard includes the job API again (``api/ui``)."""

INCLUDED_PREFIXES: tuple[str, ...] = (UI_API_PREFIX,)
"""Prefixes under which a router is included a second time (see :func:`route_template`)."""


def route_template(scope: Scope, prefixes: Sequence[str] = INCLUDED_PREFIXES) -> str:
    """The template of the route that served ``scope`` (``/jobs/{job_id}``), with the prefix
    of a second inclusion put back (``/ui/api/jobs/{job_id}``); ``unmatched`` when no route
    matched. Its values are the app's templates only: a bounded label and log field.

    Args:
        scope: the ASGI scope after routing.
        prefixes: the literal prefixes a router is included under a second time.
    """
    route: Any = scope.get("route")
    template = getattr(route, "path", None)
    if not isinstance(template, str) or not template:
        return "unmatched"
    regex = getattr(route, "path_regex", None)
    path: str = scope.get("path", "")
    root = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    if regex is None or regex.match(path):
        return template
    for prefix in prefixes:
        if path.startswith(prefix) and regex.match(path[len(prefix) :]):
            return prefix + template
    return template


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
        # The template (/jobs/{job_id}), never the raw path: label values must stay few.
        template = route_template(scope)
        method = scope.get("method", "")
        self.metrics.http_requests.labels(method, template, str(status)).inc()
        self.metrics.http_duration.labels(method, template).observe(duration)
        log.info(
            "http_request",
            method=method[:16],  # any token is a valid method: keep the log line bounded
            route=template,
            status=status,
            duration_ms=round(duration * 1000, 3),
        )
