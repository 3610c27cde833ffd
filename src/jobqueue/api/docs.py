"""``/docs``: Swagger UI served by the service itself, under a Content-Security-Policy.

FastAPI's default page loads Swagger UI's script and stylesheet from a public CDN: blank on a
network without internet, and a script from a third party running on the dashboard's origin
(where the session cookie and the CSRF token live). The assets come from the ``fastapi-offline``
package instead (served at ``/docs/static``, no file of it copied into this repository), ReDoc
is left out, and Swagger UI's validator badge (a request to validator.swagger.io) is off.

The page keeps FastAPI's one inline script (it starts Swagger UI); :class:`DocsPolicy` allows it
by its SHA-256 hash (CSP Level 3, "hash-source"), computed from the page as rendered, so nothing
else inline and nothing from elsewhere runs.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DOCS_URL = "/docs"
DOCS_STATIC_URL = "/docs/static"
MAX_DOCS_PAGE_BYTES = 65_536
"""The docs pages are about 1 KB; a response bigger than this is passed through unchanged."""

_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)


def create_fastapi(**kwargs: Any) -> FastAPI:
    """A FastAPI app whose ``/docs`` is Swagger UI from local assets (no ReDoc); ``kwargs`` go
    to :class:`fastapi.FastAPI`.

    FastAPI's own OpenTelemetry hooks are off: the service has its Prometheus metrics and
    structured logs, and with the hooks on every request looked up the global OpenTelemetry
    providers in ``os.environ`` (about 2 % of the service's CPU per enqueue, ``bench.profile``).
    """
    return FastAPIOffline(
        docs_url=DOCS_URL,
        redoc_url=None,
        static_url=DOCS_STATIC_URL,
        swagger_ui_parameters={"validatorUrl": None},
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
        **kwargs,
    )


def content_security_policy(page: bytes) -> str:
    """The policy of a docs page: scripts, styles and images from this origin only, plus the
    page's own inline scripts by hash. Swagger UI sets styles at run time (hence
    ``'unsafe-inline'`` for styles only) and shows SVG icons as ``data:`` images."""
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(script).digest()).decode()}'"
        for script in _INLINE_SCRIPT.findall(page)
    )
    return (
        f"default-src 'none'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    )


class DocsPolicy:
    """Wraps the app: the docs pages (``/docs``, ``/docs/oauth2-redirect``) get a
    Content-Security-Policy made from their body, ``X-Content-Type-Options: nosniff`` and
    ``Referrer-Policy: same-origin``.

    Args:
        app: the ASGI app.
        paths: the pages, relative to the root path.
    """

    def __init__(self, app: ASGIApp, paths: tuple[str, ...]) -> None:
        self.app = app
        self.paths = frozenset(paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        root: str = scope.get("root_path", "")
        path: str = scope.get("path", "")
        if scope["type"] != "http" or path.removeprefix(root) not in self.paths:
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        body = b""

        async def buffering_send(message: Message) -> None:
            nonlocal start, body
            if message["type"] == "http.response.start":
                start = message
                return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            body += message.get("body", b"")
            if message.get("more_body", False) and len(body) <= MAX_DOCS_PAGE_BYTES:
                return
            headers = list(start.get("headers", ()))
            if not message.get("more_body", False):
                headers += [
                    (b"content-security-policy", content_security_policy(body).encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"same-origin"),
                ]
            await send({**start, "headers": headers})
            await send({**message, "body": body})
            start = None

        await self.app(scope, receive, buffering_send)
