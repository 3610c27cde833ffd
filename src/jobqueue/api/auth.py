"""Who may call what: API keys (``Authorization: Bearer <key>``) and dashboard sessions.

Routes declare the role they need with a dependency (``dependencies=[WriteAccess]``):

- no keys configured (``JOBQUEUE_API_KEYS`` unset): every request is allowed, as ``admin``
  (the CLI binds such a service to loopback only); a state-changing request that a browser
  marks as cross-site is still refused, so a web page cannot drive a local service;
- a bearer key: its role decides; no CSRF check (a browser never adds the header by itself);
- else the dashboard's session cookie (``jq_session``, Path ``/ui``): its key's role decides,
  and a state-changing request must carry the session's CSRF token in ``X-CSRF-Token`` and
  must not come from another site (``Origin``, ``Sec-Fetch-Site``);
- nothing: 401 with ``WWW-Authenticate: Bearer``; too low a role: 403 naming the role needed.

The rules themselves (roles, constant-time key lookup, signed session tokens) are in
:mod:`jobqueue.access`; the status codes in ``api/errors.py``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from jobqueue.access import KeyRing, Role, SessionCodec
from jobqueue.api.state import state_of
from jobqueue.errors import NotAuthenticated, PermissionDenied
from jobqueue.settings import Settings

SESSION_COOKIE = "jq_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="An API key from JOBQUEUE_API_KEYS, sent as `Authorization: Bearer <key>`. "
    "Roles: read (GET /jobs…), write (also POST /jobs, /jobs/batch), admin (also cancel and "
    "retry). Not needed when the service runs without keys.",
)
Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]


@dataclass(frozen=True)
class Principal:
    """Who made a request.

    Attributes:
        name: the key's name; ``"anonymous"`` when no keys are configured.
        role: what it may do (``admin`` when no keys are configured).
        via: ``"open"`` (no keys configured), ``"bearer"`` or ``"session"`` (dashboard cookie).
        session_token: the session cookie's value when ``via == "session"``.
    """

    name: str
    role: Role
    via: Literal["open", "bearer", "session"]
    session_token: str | None = field(default=None, repr=False)


class LoginRequired(NotAuthenticated):
    """A dashboard page was asked for without a session: the dashboard answers with a redirect
    to its login form (an API client still gets the 401)."""


def cross_site_reason(request: Request) -> str | None:
    """Why a browser request looks cross-site, or None when it does not.

    ``Sec-Fetch-Site`` (Fetch Metadata) must be ``same-origin`` or ``none`` when sent, and
    ``Origin`` must name this host (the ``Host`` or ``X-Forwarded-Host`` header) when sent.
    Clients other than browsers send neither and pass.
    """
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return f"the request came from another site (Sec-Fetch-Site: {site})"
    origin = request.headers.get("origin")
    if origin is None:
        return None
    hosts = {
        value.strip().lower()
        for header in ("host", "x-forwarded-host")
        for value in request.headers.get(header, "").split(",")
        if value.strip()
    }
    netloc = urlsplit(origin).netloc.lower() if origin != "null" else ""
    if not netloc or netloc not in hosts:
        return f"the request came from another origin ({origin})"
    return None


class Access:
    """The access rules of one app, built from settings by :meth:`from_settings`.

    Args:
        keys: the configured keys; empty means open access.
        sessions: signs and verifies dashboard sessions.
        metrics_require_key: ``/metrics`` needs a ``read`` key (``JOBQUEUE_METRICS_REQUIRE_KEY``).
    """

    def __init__(self, keys: KeyRing, sessions: SessionCodec, metrics_require_key: bool) -> None:
        self.keys = keys
        self.sessions = sessions
        self.metrics_require_key = metrics_require_key

    @classmethod
    def from_settings(cls, settings: Settings) -> Access:
        """The rules ``settings`` describe; the session secret is ``JOBQUEUE_SESSION_SECRET``,
        or 32 random bytes for this process (sessions then end when it restarts)."""
        keys = KeyRing(settings.api_key_list)
        configured = settings.session_secret
        secret = configured.get_secret_value().encode() if configured else secrets.token_bytes(32)
        return cls(
            keys,
            SessionCodec(secret, keys, settings.session_max_age_seconds),
            settings.metrics_require_key,
        )

    @property
    def enabled(self) -> bool:
        """True when keys are configured (otherwise every request is allowed)."""
        return bool(self.keys)

    def authenticate(self, request: Request) -> Principal:
        """Who sent ``request``.

        Raises:
            NotAuthenticated: keys are configured and the request has no valid key or session.
            PermissionDenied: a state-changing request that is cross-site, or made with a
                session but without its CSRF token.
        """
        unsafe = request.method not in SAFE_METHODS
        if not self.enabled:
            if unsafe and (reason := cross_site_reason(request)):
                raise PermissionDenied(f"refused: {reason}")
            return Principal("anonymous", Role.ADMIN, "open")
        authorization = request.headers.get("authorization")
        if authorization is not None:
            return self._bearer(authorization)
        token = request.cookies.get(SESSION_COOKIE)
        if token is None:
            raise NotAuthenticated(
                "this needs an API key: send 'Authorization: Bearer <key>' "
                "(keys are set in JOBQUEUE_API_KEYS)"
            )
        session = self.sessions.verify(token, time.time())
        if session is None:
            raise NotAuthenticated("the dashboard session has ended: log in again at /ui/login")
        if unsafe:
            if reason := cross_site_reason(request):
                raise PermissionDenied(f"refused: {reason}")
            if not self.sessions.check_csrf(token, request.headers.get(CSRF_HEADER, "")):
                raise PermissionDenied(
                    f"a request made with a dashboard session needs its CSRF token in the "
                    f"{CSRF_HEADER} header (API clients: use 'Authorization: Bearer <key>')"
                )
        return Principal(session.name, session.role, "session", token)

    def _bearer(self, authorization: str) -> Principal:
        scheme, _, presented = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise NotAuthenticated(
                "send the key as 'Authorization: Bearer <key>'", invalid_token=True
            )
        key = self.keys.match(presented.strip())
        if key is None:
            raise NotAuthenticated("the API key is not valid", invalid_token=True)
        return Principal(key.name, key.role, "bearer")

    def authorize(self, principal: Principal, needed: Role) -> Principal:
        """``principal`` when its role includes ``needed``.

        Raises:
            PermissionDenied: it does not; the message names the role needed.
        """
        if not principal.role.allows(needed):
            raise PermissionDenied(
                f"this needs the {needed} role; key {principal.name!r} has the {principal.role} "
                "role"
            )
        return principal


def access_of(request: Request) -> Access:
    """The app's :class:`Access` (built in ``create_app``)."""
    return state_of(request.app).access


def require(role: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency that lets a request through when its key or session has ``role``.

    The principal is also kept in ``request.state.principal`` (the dashboard's pages and the
    audit log read it), set before the role is checked.

    Raises (from the dependency):
        NotAuthenticated: 401. PermissionDenied: 403.
    """

    async def dependency(request: Request, _bearer: Bearer) -> Principal:
        access = access_of(request)
        principal = access.authenticate(request)
        request.state.principal = principal  # before the role check: a 403 is logged with it
        return access.authorize(principal, role)

    dependency.__name__ = f"require_{role}"
    return dependency


def require_page(role: Role) -> Callable[..., Awaitable[Principal]]:
    """Like :func:`require`, for the dashboard's HTML pages: a request without any credentials
    raises :class:`LoginRequired` (the dashboard redirects it to its login form)."""

    async def dependency(request: Request) -> Principal:
        access = access_of(request)
        try:
            principal = access.authenticate(request)
        except NotAuthenticated as exc:
            if "authorization" in request.headers:
                raise
            raise LoginRequired(str(exc)) from None
        request.state.principal = principal  # before the role check: a 403 is logged with it
        return access.authorize(principal, role)

    dependency.__name__ = f"require_page_{role}"
    return dependency


async def metrics_access(request: Request, _bearer: Bearer) -> None:
    """``/metrics``: open, unless ``JOBQUEUE_METRICS_REQUIRE_KEY=true`` (then ``read``)."""
    access = access_of(request)
    if access.metrics_require_key:
        principal = access.authenticate(request)
        request.state.principal = principal
        access.authorize(principal, Role.READ)


ReadAccess: Any = Depends(require(Role.READ))
"""Route dependency: a key or session with the ``read`` role (``GET /jobs…``)."""
WriteAccess: Any = Depends(require(Role.WRITE))
"""Route dependency: the ``write`` role (``POST /jobs``, ``POST /jobs/batch``)."""
AdminAccess: Any = Depends(require(Role.ADMIN))
"""Route dependency: the ``admin`` role (cancel, retry)."""
PageAccess: Any = Depends(require_page(Role.READ))
"""Dependency of the dashboard's pages: ``read``, with a redirect to the login form."""
