"""``/ui/login`` and ``/ui/logout``: the dashboard's session, made from the same API keys.

The form posts a key; a valid one gets the cookie ``jq_session``: ``HttpOnly``,
``SameSite=Strict``, ``Path=<root>/ui``, ``Secure`` when the request came over https, and
``Max-Age`` ``JOBQUEUE_SESSION_MAX_AGE_SECONDS``. It holds a signed token
(:class:`jobqueue.access.SessionCodec`) with the key's name, role and expiry, never the key. The
pages then embed the session's CSRF token for their scripts (``api/auth.py`` checks it).

A page asked for without a session (:class:`~jobqueue.api.auth.LoginRequired`) is redirected
here with ``next`` set to it. With no keys configured there is nothing to log into: both
routes send the browser to the overview.
"""

from __future__ import annotations

import time
from typing import Annotated
from urllib.parse import parse_qs, urlencode, urlsplit

import structlog
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from jobqueue.access import Role
from jobqueue.api.auth import SESSION_COOKIE, access_of, cross_site_reason
from jobqueue.api.state import state_of
from jobqueue.api.ui._render import render_page

log = structlog.get_logger(__name__)

MAX_FORM_BYTES = 4096
"""The login form is a key and a path: anything bigger is not ours."""

router = APIRouter(prefix="/ui", include_in_schema=False)


def _root(request: Request) -> str:
    root: str = request.scope.get("root_path", "")
    return root


def safe_next(value: str | None, root: str) -> str:
    """Where to go after logging in: ``value`` when it is a path of this dashboard (no scheme,
    no host, no ``//``, not the login or logout page itself), else the overview."""
    home = f"{root}/ui"
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return home
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return home
    if parts.path != home and not parts.path.startswith(f"{home}/"):
        return home
    if parts.path in (f"{home}/login", f"{home}/logout"):
        return home
    return value


async def to_login(request: Request, _exc: Exception) -> Response:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    query = urlencode({"next": safe_next(here, _root(request))})
    return RedirectResponse(f"{_root(request)}/ui/login?{query}", status_code=303)


def _form(request: Request, next_path: str, message: str, status_code: int) -> HTMLResponse:
    response = render_page(
        request,
        "login.html",
        {"nav": "login", "next": next_path, "message": message},
        status_code,
    )
    if status_code == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="jobqueue"'
    return response


def _client(request: Request) -> str | None:
    return request.client.host if request.client else None


async def _read_form(request: Request) -> dict[str, str] | None:
    """The urlencoded form's first value per field; None when the body is over the limit (a
    declared length over it is refused before a byte is read)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        return None
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=10)
    return {name: values[0] for name, values in fields.items() if values}


@router.get("/login", response_class=HTMLResponse)
async def login_form(
    request: Request, next: Annotated[str, Query(max_length=2000)] = ""
) -> Response:
    """The login form: one field for an API key."""
    target = safe_next(next, _root(request))
    if not access_of(request).enabled:
        return RedirectResponse(target, status_code=303)
    return _form(request, target, "", 200)


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    """Check the posted key; a valid one gets the session cookie and a redirect to ``next``.

    Errors: 401 (the form again, with a message) for a key that is not valid; 403 for a form
    posted from another site or a ``worker`` key (it may only use the lease API); 413 for a
    body over 4 KB.
    """
    access = access_of(request)
    root = _root(request)
    if not access.enabled:
        return RedirectResponse(f"{root}/ui", status_code=303)
    if reason := cross_site_reason(request):
        state_of(request.app).metrics.auth_failures.labels("cross_site").inc()
        log.warning(
            "auth_failed", reason="cross_site", status=403, via="login", client=_client(request)
        )
        return _form(request, f"{root}/ui", f"Refused: {reason}.", 403)
    form = await _read_form(request)
    if form is None:
        return _form(request, f"{root}/ui", "The form is too large.", 413)
    target = safe_next(form.get("next"), root)
    key = access.keys.match(form.get("key", "").strip())
    client = _client(request)
    if key is None:
        state_of(request.app).metrics.auth_failures.labels("invalid_key").inc()
        log.warning("auth_failed", reason="invalid_key", status=401, via="login", client=client)
        return _form(request, target, "That key is not valid.", 401)
    if not key.role.allows(Role.READ):
        state_of(request.app).metrics.auth_failures.labels("role").inc()
        log.warning("auth_failed", reason="role", status=403, via="login", client=client)
        return _form(request, target, "A worker key cannot open the dashboard.", 403)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        access.sessions.issue(key, time.time()),
        max_age=access.sessions.max_age_seconds,
        path=f"{root}/ui",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    log.info("login", key_name=key.name, role=str(key.role), client=client)
    return response


@router.post("/logout", response_class=HTMLResponse)
async def logout(request: Request) -> Response:
    """End the session: the cookie is deleted and the browser sent to the login form."""
    root = _root(request)
    if reason := cross_site_reason(request):
        return _form(request, f"{root}/ui", f"Refused: {reason}.", 403)
    response = RedirectResponse(f"{root}/ui/login", status_code=303)
    response.delete_cookie(
        SESSION_COOKIE,
        path=f"{root}/ui",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    return response
