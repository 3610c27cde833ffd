"""Request middleware (plain ASGI, no per-request task).

:class:`RequestMiddleware`: a request id, HTTP metrics, one log event per request, the JSON 500
of an unexpected exception, and ``Cache-Control: no-store`` on the dashboard. The request id is
the incoming ``X-Request-ID`` when it is a sane token (1-128 characters of ``A-Za-z0-9._-``),
else a new random one; it is returned in the ``X-Request-ID`` response header and bound to every
log event of the request (structlog contextvars).

:class:`ProxyHeaders`: uvicorn's ``ProxyHeadersMiddleware`` (``X-Forwarded-For`` and
``X-Forwarded-Proto`` from the proxies in ``FORWARDED_ALLOW_IPS``), applied inside the app rather
than by uvicorn, so that the app still knows whether its TCP peer was such a proxy: only then is
``X-Forwarded-Host`` believed (``api/auth.py: cross_site_reason``).

The route label is the matched route's template (``/jobs/{job_id}``), never the raw path. A
router included twice (the dashboard serves the job API again under ``/ui/api``) keeps one
route object per route in FastAPI >= 0.120, whose template lacks the prefix:
:func:`route_template` puts the prefix back, so the dashboard's calls are counted apart
(``/ui/api/jobs/{job_id}``). FastAPI records the route in the scope for its own routes only;
for the app's other routes (``/openapi.json``, and the mounts serving files: Swagger UI's
assets under ``/docs/static``, the dashboard's under ``/ui/static``) :func:`route_template`
finds the route by the endpoint the router put in the scope, so they are labelled
``/openapi.json``, ``/docs/static/{path}`` and ``/ui/static/{path}``. Only a request that no
route matched is ``unmatched``.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Sequence
from typing import Any

import structlog
from starlette.requests import ClientDisconnect
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from jobqueue.api.auth import TRUSTED_PROXY
from jobqueue.api.disconnect import CLIENT_CLOSED_REQUEST
from jobqueue.metrics import Metrics

log = structlog.get_logger("jobqueue.http")

NO_STORE = (b"cache-control", b"no-store")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")

UI_API_PREFIX = "/ui/api"
"""Where the dashboard includes the job API again (``api/ui``)."""

INCLUDED_PREFIXES: tuple[str, ...] = (UI_API_PREFIX,)
"""Prefixes under which a router is included a second time (see :func:`route_template`)."""


def route_template(scope: Scope, prefixes: Sequence[str] = INCLUDED_PREFIXES) -> str:
    """The template of the route that served ``scope`` (``/jobs/{job_id}``), with the prefix
    of a second inclusion put back (``/ui/api/jobs/{job_id}``); a mount's is its path and
    ``/{path}`` (``/docs/static/{path}``, also for a file it does not have); ``unmatched``
    when no route matched. Its values are the app's templates only: a bounded label and log
    field.

    Args:
        scope: the ASGI scope after routing.
        prefixes: the literal prefixes a router is included under a second time.
    """
    route: Any = scope.get("route") or _route_of_endpoint(scope)
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
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


def _route_of_endpoint(scope: Scope) -> BaseRoute | None:
    """The app's route (a plain ``Route`` or a ``Mount``) whose endpoint the router put in
    ``scope``: FastAPI sets ``scope["route"]`` for its own routes only. None when no route
    matched (no endpoint), or the endpoint is not one of the app's top-level routes."""
    endpoint = scope.get("endpoint")
    app = scope.get("app")
    if endpoint is None or app is None:
        return None
    for route in getattr(app, "routes", ()):
        if isinstance(route, Mount) and route.app is endpoint:
            return route
        if isinstance(route, Route) and route.endpoint is endpoint:
            return route
    return None


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

    An exception that escapes the app is logged once, as ``request_failed`` at error level with
    its traceback and the request id, and answered ``500 {"detail": "internal error",
    "request_id": ...}`` (when the response has not started; else the connection is dropped).
    Every response under ``/ui`` but the static files gets ``Cache-Control: no-store``: pages,
    the login form, error pages and the dashboard's JSON hold job data and CSRF tokens that a
    shared or back-button cache must not keep.

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
        added = [(b"x-request-id", request_id.encode())]
        no_store = _no_store(scope)
        if no_store:
            added.append(NO_STORE)
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                headers = message.get("headers", ())
                if no_store:  # it replaces what the route said
                    headers = [h for h in headers if h[0] != NO_STORE[0]]
                message = {**message, "headers": [*headers, *added]}
            await send(message)

        started = time.perf_counter()
        # bind + reset by token: structlog's bound_contextvars() copies the whole context to
        # save what it overwrites, a cost on every request.
        tokens = structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, receive, send_with_id)
        except ClientDisconnect:
            # The client went away (or sent a body uvicorn could not read, which it answered
            # itself): not a fault of ours, so not a 500 in the log and the metrics.
            status = CLIENT_CLOSED_REQUEST
            log.info("request_aborted", method=scope.get("method", "")[:16])
        except Exception:
            status = 500
            log.exception(
                "request_failed", method=scope.get("method", ""), route=route_template(scope)
            )
            if not response_started:
                await _send_500(send_with_id, request_id)
        finally:
            self._record(scope, status, time.perf_counter() - started)
            structlog.contextvars.reset_contextvars(**tokens)

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


def _no_store(scope: Scope) -> bool:
    root: str = scope.get("root_path", "")
    path: str = scope.get("path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return (path == "/ui" or path.startswith("/ui/")) and not path.startswith("/ui/static/")


async def _send_500(send: Send, request_id: str) -> None:
    body = json.dumps({"detail": "internal error", "request_id": request_id}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 500,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class ProxyHeaders:
    """Wraps the app: marks whether the TCP peer is a trusted proxy (``scope[TRUSTED_PROXY]``),
    then applies uvicorn's ``ProxyHeadersMiddleware`` with the same list. ``jobqueue serve``
    turns uvicorn's own copy off (``proxy_headers=False``) so it does not run twice.

    Args:
        app: the ASGI app.
        trusted: ``FORWARDED_ALLOW_IPS`` as a list: addresses, networks, or ``"*"``.
    """

    def __init__(self, app: ASGIApp, trusted: list[str]) -> None:
        self.proxy = ProxyHeadersMiddleware(app, trusted_hosts=trusted)  # type: ignore[arg-type]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            client = scope.get("client")
            scope[TRUSTED_PROXY] = client is not None and client[0] in self.proxy.trusted_hosts
        await self.proxy(scope, receive, send)  # type: ignore[arg-type]
