"""Rendering of the dashboard's pages: the jinja2 environment (autoescaped), the common context,
the security headers, and error pages."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from jobqueue import __version__
from jobqueue.access import Role
from jobqueue.api.auth import Principal, access_of
from jobqueue.api.errors import detail_of, status_of
from jobqueue.errors import JobQueueError
from jobqueue.service.dashboard import format_seconds

UI_DIR = Path(__file__).resolve().parent
TEMPLATE_DIR = UI_DIR / "templates"
STATIC_DIR = UI_DIR / "static"

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
"""Everything from this origin, no inline script or style: the pages need nothing else."""


def _time(value: datetime | None) -> str:
    return "—" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


MAX_SHOWN_BYTES = 65_536
"""The most bytes of one payload or result a job page shows, pretty-printed UTF-8 JSON; the
whole value is behind a link (``/ui/jobs/{id}/payload``, ``/result``)."""


@dataclass(frozen=True, slots=True)
class JsonPreview:
    """What a page shows of a JSON value: ``text``, its pretty-printed JSON (indent 2), cut to
    at most the limit in UTF-8 bytes (on a character boundary) when ``cut`` is True."""

    text: str
    cut: bool


def json_preview(value: Any, limit: int = MAX_SHOWN_BYTES) -> JsonPreview:
    """The first ``limit`` bytes of ``value`` pretty-printed, without printing the rest.

    The JSON is produced piece by piece (``JSONEncoder.iterencode``) and the walk stops once
    ``limit`` bytes are out, so a 1 MiB payload of small items costs the page about ``limit``
    bytes of text, not the several MiB its indented form would take (nor as much HTML).
    """
    parts: list[str] = []
    size = 0
    for chunk in json.JSONEncoder(indent=2, ensure_ascii=False).iterencode(value):
        parts.append(chunk)
        size += len(chunk) if chunk.isascii() else len(chunk.encode())
        if size > limit:
            text = "".join(parts).encode()[:limit].decode(errors="ignore")
            return JsonPreview(text, cut=True)
    return JsonPreview("".join(parts), cut=False)


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,  # every template is HTML: escape everything, whatever its extension
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["time"] = _time
    env.filters["seconds"] = format_seconds
    return env


templates = Jinja2Templates(env=_environment())


def render_page(
    request: Request, template: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    """Render a dashboard template with the common context (paths, version, who is signed in,
    the session's CSRF token, what the role allows) and the security headers."""
    root = request.scope.get("root_path", "")
    principal: Principal | None = getattr(request.state, "principal", None)
    token = principal.session_token if principal is not None else None
    response = templates.TemplateResponse(
        request,
        template,
        {
            "root": root,
            "base": f"{root}/ui",
            "static": f"{root}/ui/static",
            "version": __version__,
            "nav": "",
            "user": principal if principal is not None and principal.via != "open" else None,
            "csrf_token": access_of(request).sessions.csrf_token(token) if token else "",
            "can_write": principal is not None and principal.role.allows(Role.WRITE),
            "can_admin": principal is not None and principal.role.allows(Role.ADMIN),
            **context,
        },
        status_code=status_code,
    )
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def error_page(request: Request, exc: JobQueueError) -> HTMLResponse:
    """The error page for a domain error, with the status ``api/errors.py`` gives it."""
    status = status_of(exc)
    response = render_page(
        request, "error.html", {"status": status, "message": detail_of(exc)}, status
    )
    if status == 503:
        response.headers["Retry-After"] = "1"
    return response
