"""The access guard, in the ASGI layer: the ``Host`` check before routing, and each route's
role check after routing but before anything reads the body.

:class:`HostGuard` (a middleware) refuses a request without exactly one well-formed ``Host``
(400, RFC 9112 section 3.2), and a ``Host`` that is not a loopback name when no keys are
configured (421, unless ``JOBQUEUE_INSECURE=true``): the service then trusts whoever reaches it,
and only loopback names make sure that "whoever" is a program on this machine, not a web page
whose DNS name was rebound to ``127.0.0.1`` (a browser sends the page's own name in ``Host``).

:class:`GuardedRoute` (the routers' ``route_class``) wraps each route's request handler with the
route's :class:`~jobqueue.api.auth.Rule` (declared with ``openapi_extra=needs(...)``): the key
or session is checked from the headers (for a bearer key one SHA-256, one dict lookup and one
constant-time compare) and a refusal is answered at once, so an unauthenticated 16 MiB body is
never read, let alone parsed, and a request with a body still on the wire gets
``Connection: close``. The check sits on the route rather than in a middleware in front of the
router because the router already knows the route: a middleware would have to repeat its
matching (first full match of path and method over every included router), and FastAPI's
router does that through private structures. Either way it is plain ASGI: this replaces a
FastAPI dependency per route, whose solving cost the 32-client HTTP enqueue about a quarter of
its throughput (docs/performance.md).

Refusals are answered by the app's own exception handlers (``api/errors.py`` for the status,
``api/ui/login.py`` for the dashboard's redirect to its login form), logged as ``auth_failed``
(reason, client address, route template, key name when known; never a key) and counted in
``jobqueue_auth_failures_total{reason}``. The principal is kept in ``request.state.principal``
for the dashboard's pages.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import structlog
from fastapi.routing import APIRoute
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from jobqueue.access import host_of, is_loopback_host
from jobqueue.api import audit
from jobqueue.api.auth import Access, LoginRequired, Rule
from jobqueue.api.state import state_of
from jobqueue.errors import (
    JobQueueError,
    MalformedHost,
    MisdirectedRequest,
    NotAuthenticated,
    PermissionDenied,
)
from jobqueue.metrics import Metrics

log = structlog.get_logger("jobqueue.access")

MAX_LOGGED_HOST = 100
"""A refused ``Host`` is client text: at most this many characters of it reach the log."""
MAX_CACHED_HOSTS = 256
MAX_CACHED_HOST_LENGTH = 64

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


# RFC 9110 section 7.2: Host = uri-host [ ":" port ]; RFC 3986 section 3.2.2: an IP literal in
# brackets (IPv6, with an RFC 6874 zone), or a reg-name (an IPv4 address is one too).
_HOST_FIELD = re.compile(
    r"(?:\[[0-9A-Fa-f:.]+(?:%25[A-Za-z0-9._~-]+)?\]"
    r"|(?:[A-Za-z0-9._~!$&'()*+,;=-]|%[0-9A-Fa-f]{2})*)"
    r"(?::[0-9]*)?"
)


@dataclass(frozen=True)
class _HostVerdict:
    well_formed: bool
    loopback: bool


class HostGuard:
    """Wraps the app: the request's ``Host`` field, before routing.

    - Always: an HTTP/1.1 request without ``Host``, with more than one ``Host`` field line, or
      whose ``Host`` is not a host name or address with an optional port gets 400 (RFC 9112
      section 3.2, a MUST). Which of two Host lines counts is ambiguous, and a proxy in front
      may have checked the other one: ``Host: localhost`` then ``Host: evil.com`` was served
      without keys before. For an absolute-form request target (``GET http://h/jobs``) the
      connection guard has already put the target's authority in ``Host`` (``api/edge.py``,
      RFC 9112 section 3.2.2), so it is the target's host that is checked.
    - Without keys (and without ``JOBQUEUE_INSECURE``): a ``Host`` that is not ``localhost``, an
      address in ``127.0.0.0/8`` or ``[::1]`` (any port) gets 421.

    Args:
        app: the ASGI app.
        access: the app's access rules.
        metrics: where 421s are counted (``jobqueue_auth_failures_total{reason="host"}``).
    """

    def __init__(self, app: ASGIApp, access: Access, metrics: Metrics) -> None:
        self.app = app
        self.loopback_only = not access.enabled and not access.insecure
        self.metrics = metrics
        # Parsing costs microseconds on every request; clients send few distinct Host values,
        # so the answers are kept (a bounded number, short values only).
        self._known: dict[bytes, _HostVerdict] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        hosts = [value for name, value in scope["headers"] if name == b"host"]
        verdict = self._verdict(hosts[0]) if len(hosts) == 1 else None
        if (
            len(hosts) > 1
            or (verdict is not None and not verdict.well_formed)
            or (not hosts and scope.get("http_version") == "1.1")
        ):
            exc: JobQueueError = MalformedHost(malformed_host_message(hosts))
            await refuse(exc, Request(scope, receive), scope, receive, send)
            return
        if self.loopback_only and not (verdict is not None and verdict.loopback):
            connection = HTTPConnection(scope)
            host = connection.headers.get("host", "")
            exc = MisdirectedRequest(
                "this service has no API keys, so it answers only requests addressed to a "
                "loopback name (localhost, 127.0.0.1, [::1]): set JOBQUEUE_API_KEYS to serve "
                "other host names (see docs/security.md)"
            )
            record_refusal(self.metrics, exc, connection, host=host[:MAX_LOGGED_HOST])
            await refuse(exc, Request(scope, receive), scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _verdict(self, host: bytes) -> _HostVerdict:
        """Whether ``host`` (one Host field's value) is well formed, and names a loopback
        host."""
        known = self._known.get(host)
        if known is None:
            text = host.decode("latin-1").strip()
            well_formed = _HOST_FIELD.fullmatch(text) is not None
            known = _HostVerdict(well_formed, well_formed and is_loopback_host(host_of(text)))
            if len(host) <= MAX_CACHED_HOST_LENGTH and len(self._known) < MAX_CACHED_HOSTS:
                self._known[host] = known
        return known


def malformed_host_message(hosts: list[bytes]) -> str:
    """The 400's words for the ``Host`` field lines ``hosts`` (none, several, or one that is
    not ``host[:port]``); a value is quoted to at most :data:`MAX_LOGGED_HOST` characters."""
    if not hosts:
        return "an HTTP/1.1 request needs a Host header (RFC 9112 section 3.2)"
    if len(hosts) > 1:
        return (
            f"the request has {len(hosts)} Host header lines; send exactly one "
            "(RFC 9112 section 3.2)"
        )
    value = hosts[0].decode("latin-1")[:MAX_LOGGED_HOST]
    return (
        f"the Host header {value!r} is not a host name or address with an optional port "
        "(RFC 9110 section 7.2)"
    )


class GuardedRoute(APIRoute):
    """An ``APIRoute`` whose request handler first applies the route's rule, if it declared
    one (``openapi_extra=needs(...)``); routes without a rule are open."""

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()
        rule = Rule.of(self)
        if rule is None:
            return handler
        path = self.path_format

        async def guarded(request: Request) -> Response:
            state = state_of(request.app)
            try:
                principal = state.access.check(rule, request)
            except JobQueueError as exc:
                if not isinstance(exc, LoginRequired):  # a page asked for before logging in
                    record_refusal(state.metrics, exc, request, route=path)
                if isinstance(exc, PermissionDenied):
                    audit.denied(request, exc)
                return await refusal(exc, request)
            if principal is not None:
                request.state.principal = principal
            return await handler(request)

        return guarded


def record_refusal(
    metrics: Metrics, exc: JobQueueError, connection: HTTPConnection, **fields: Any
) -> None:
    """Count a refusal by reason and log it as ``auth_failed`` (never with a key)."""
    if isinstance(exc, MisdirectedRequest):
        reason, status = "host", 421
    elif isinstance(exc, NotAuthenticated):
        reason, status = exc.reason, 401
    elif isinstance(exc, PermissionDenied):
        reason, status = exc.reason, 403
        fields["key_name"] = exc.key_name
    else:  # pragma: no cover - the checks raise only the errors above
        return
    metrics.auth_failures.labels(reason).inc()
    log.warning(
        "auth_failed",
        reason=reason,
        status=status,
        client=connection.client.host if connection.client else None,
        method=connection.scope.get("method"),
        **fields,
    )


async def refusal(exc: JobQueueError, request: Request) -> Response:
    """The app's answer to ``exc`` (its exception handler's response), with ``Connection:
    close`` when the request's body is still on the wire and will never be read (without it
    uvicorn would read that body to its end before the next request)."""
    handler: Any = None
    for cls in type(exc).__mro__:
        handler = request.app.exception_handlers.get(cls)
        if handler is not None:
            break
    if handler is None:  # pragma: no cover - api/errors.py handles every JobQueueError
        raise exc
    response = handler(request, exc)
    if inspect.isawaitable(response):
        response = await response
    if _body_pending(request.scope):
        response.headers["connection"] = "close"
    answer: Response = response
    return answer


async def refuse(
    exc: JobQueueError, request: Request, scope: Scope, receive: Receive, send: Send
) -> None:
    """Send :func:`refusal`'s response from a middleware."""
    response = await refusal(exc, request)
    await response(scope, receive, send)


def _body_pending(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0"):
            return True
    return False
