"""Request methods answered the same way on every route: HEAD as GET, and the ``Allow`` of a 405.

**HEAD.** RFC 9110 section 9.1: "All general-purpose servers MUST support the methods GET and
HEAD", and section 9.3.2: the answer to HEAD is the answer to GET without its content (the
same status and header fields, ``Content-Length`` included). FastAPI's routes answer only the
methods they declare, so ``HEAD /healthz`` was a 405 and a load balancer's HEAD probe failed.
:class:`HeadAsGet` runs a HEAD request as the GET of the same URL (the same route, the same role
check, the same status and headers) and sends no content: every route that answers GET answers
HEAD, and costs what its GET costs.

**405.** RFC 9110 section 15.5.6: a 405 "MUST generate an Allow header field ... containing a
list of the target resource's currently supported methods". Starlette's router names the
methods of the first route whose path matched only, so ``OPTIONS /jobs`` said ``Allow: POST``
although ``GET /jobs`` exists. :func:`allowed_methods` asks every route of the app (each one's
``matches``, the router's own test) which methods it would take for the path. It runs for 405s
only. OPTIONS itself is not supported (no route declares it, and there is no CORS): a 405 with
the right ``Allow``.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PROBED_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
"""The methods :func:`allowed_methods` asks about; HEAD goes with GET (:class:`HeadAsGet`)."""

ROUTING_KEYS = ("route", "endpoint", "path_params")
"""What the router adds to a request's scope and the request log reads (the route template)."""


class HeadAsGet:
    """Wraps the app: a HEAD request is run as a GET whose response is sent without content.

    The app sees a copy of the scope with ``method: GET``; the server's scope keeps ``HEAD`` (so
    uvicorn, too, knows to send no content), and what the router found is copied back to it for
    the request log and the metrics, which name the method HEAD.

    Args:
        app: the ASGI app.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        inner = {**scope, "method": "GET"}

        async def send_without_content(message: Message) -> None:
            if message["type"] == "http.response.body" and message.get("body"):
                message = {**message, "body": b""}
            await send(message)

        try:
            await self.app(inner, receive, send_without_content)
        finally:
            scope.update({key: inner[key] for key in ROUTING_KEYS if key in inner})


def allowed_methods(app: Starlette, scope: Scope) -> list[str]:
    """The methods some route of ``app`` answers for the request's path, sorted (HEAD with
    GET); empty when only a mount (static files) matches the path, whose own answer stands.

    Args:
        app: the Starlette or FastAPI app (its ``router.routes`` are asked).
        scope: the request's scope (its ``path`` and ``root_path``).
    """
    routes = [route for route in app.router.routes if not isinstance(route, Mount)]
    found: set[str] = set()
    for method in PROBED_METHODS:
        probe: Scope = {
            "type": "http",
            "app": app,
            "method": method,
            "path": scope["path"],
            "root_path": scope.get("root_path", ""),
            "headers": [],
            "query_string": b"",
        }
        if any(route.matches(probe)[0] is Match.FULL for route in routes):
            found.add(method)
    if "GET" in found:
        found.add("HEAD")
    return sorted(found)
