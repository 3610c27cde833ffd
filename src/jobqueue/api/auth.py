"""Who may call what: API keys (``Authorization: Bearer <key>``) and dashboard sessions.

Routes declare the role they need with ``openapi_extra=needs(Role.WRITE)``; the check itself
runs in the ASGI layer (``api/guard.py``), before the app reads a byte of the body:

- no keys configured (``JOBQUEUE_API_KEYS`` unset): every request is allowed, as ``admin``
  (the CLI binds such a service to loopback only, and ``api/guard.py`` answers only requests
  whose ``Host`` is a loopback name); a state-changing request that a browser marks as
  cross-site is still refused, so a web page cannot drive a local service;
- a bearer key: its role decides; no CSRF check (a browser never adds the header by itself);
- else the dashboard's session cookie (``jq_session``, Path ``/ui``): its key's role decides,
  and a state-changing request must carry the session's CSRF token in ``X-CSRF-Token`` and
  must not come from another site (``Origin``, ``Sec-Fetch-Site``);
- nothing: 401 with ``WWW-Authenticate: Bearer``; too low a role: 403 naming the role needed.

The rules themselves (roles, key lookup, signed session tokens) are in :mod:`jobqueue.access`;
the status codes in ``api/errors.py``.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from fastapi import FastAPI
from starlette.requests import HTTPConnection
from starlette.routing import BaseRoute

from jobqueue.access import KeyRing, Role, SessionCodec
from jobqueue.api.schemas import ErrorOut
from jobqueue.api.state import state_of
from jobqueue.errors import NotAuthenticated, PermissionDenied
from jobqueue.settings import Settings

SESSION_COOKIE = "jq_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
TRUSTED_PROXY = "jobqueue.trusted_proxy"
"""Scope key: True when the TCP peer is in ``FORWARDED_ALLOW_IPS`` (``api/middleware.py``)."""

BEARER_SCHEME: dict[str, Any] = {
    "type": "http",
    "scheme": "bearer",
    "description": "An API key from JOBQUEUE_API_KEYS, sent as `Authorization: Bearer <key>`. "
    "Roles: read (GET /jobs…), write (also POST /jobs, /jobs/batch), admin (also cancel and "
    "retry, and the lease API), worker (the lease API only: POST /leases…). Not needed when "
    "the service runs without keys.",
}
ACCESS_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "No API key, or one that is not valid."},
    403: {"model": ErrorOut, "description": "The key's role does not allow this."},
}
"""The answers of the access check, for the ``responses`` of every route that has one."""

RULE_KEY = "x-jobqueue-access"
"""The OpenAPI extension that carries a route's rule (``needs``): the guard reads it there."""


@dataclass(frozen=True)
class Rule:
    """What a route needs.

    Attributes:
        role: the least role.
        login_page: a dashboard page: a request without credentials is sent to the login form
            instead of getting a 401.
        metrics: ``/metrics``: checked only when ``JOBQUEUE_METRICS_REQUIRE_KEY=true``.
    """

    role: Role
    login_page: bool = False
    metrics: bool = False

    @classmethod
    def of(cls, route: BaseRoute) -> Rule | None:
        """The rule a route declared with :func:`needs`, or None for an open route."""
        extra = getattr(route, "openapi_extra", None) or {}
        value = extra.get(RULE_KEY)
        if value is None:
            return None
        return cls(
            Role(value["role"]),
            login_page=bool(value.get("login_page")),
            metrics=bool(value.get("metrics")),
        )


def needs(role: Role, *, login_page: bool = False, metrics: bool = False) -> dict[str, Any]:
    """A route's ``openapi_extra``: the bearer scheme in the OpenAPI document, and the rule the
    guard enforces (also shown there, as ``x-jobqueue-access``).

    Args:
        role: the least role a key or session needs.
        login_page: see :class:`Rule`.
        metrics: see :class:`Rule`; the scheme is then optional (``[{}, {"bearer": []}]``).
    """
    rule: dict[str, Any] = {"role": str(role)}
    if login_page:
        rule["login_page"] = True
    if metrics:
        rule["metrics"] = True
    security: list[dict[str, list[str]]] = [{"bearer": []}]
    return {"security": [{}, *security] if metrics else security, RULE_KEY: rule}


def add_security_scheme(app: FastAPI) -> None:
    """Put :data:`BEARER_SCHEME` in ``app``'s OpenAPI components (FastAPI adds schemes only for
    security dependencies, and the routes have none: the guard checks in the ASGI layer)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            schema.setdefault("components", {}).setdefault("securitySchemes", {})["bearer"] = (
                BEARER_SCHEME
            )
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]


@dataclass(frozen=True)
class Principal:
    """Who made a request.

    Attributes:
        name: the key's name; ``"anonymous"`` when no keys are configured.
        role: what it may do (``admin`` when no keys are configured).
        via: ``"open"`` (no keys configured), ``"bearer"`` or ``"session"`` (dashboard cookie).
        session_token: the session cookie's value when ``via == "session"``.
        queues: the only queues a ``worker`` key may lease from; None: any.
    """

    name: str
    role: Role
    via: Literal["open", "bearer", "session"]
    session_token: str | None = field(default=None, repr=False)
    queues: frozenset[str] | None = None


class LoginRequired(NotAuthenticated):
    """A dashboard page was asked for without a session: the dashboard answers with a redirect
    to its login form (an API client still gets the 401)."""


def cross_site_reason(request: HTTPConnection) -> str | None:
    """Why a browser request looks cross-site, or None when it does not.

    ``Sec-Fetch-Site`` (Fetch Metadata) must be ``same-origin`` or ``none`` when sent, and
    ``Origin`` must name this host when sent: the ``Host`` header, or ``X-Forwarded-Host`` when
    the request came through a proxy in ``FORWARDED_ALLOW_IPS`` (from anyone else that header
    is ignored: it would let a page name its own origin). Clients other than browsers send
    neither and pass.
    """
    headers = request.headers
    site = headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return f"the request came from another site (Sec-Fetch-Site: {site[:40]})"
    origin = headers.get("origin")
    if origin is None:
        return None
    names = ["host", "x-forwarded-host"] if request.scope.get(TRUSTED_PROXY) else ["host"]
    hosts = {
        value.strip().lower()
        for header in names
        for value in headers.get(header, "").split(",")
        if value.strip()
    }
    netloc = urlsplit(origin).netloc.lower() if origin != "null" else ""
    if not netloc or netloc not in hosts:
        return f"the request came from another origin ({origin[:200]})"
    return None


class Access:
    """The access rules of one app, built from settings by :meth:`from_settings`.

    Args:
        keys: the configured keys; empty means open access.
        sessions: signs and verifies dashboard sessions.
        metrics_require_key: ``/metrics`` needs a ``read`` key (``JOBQUEUE_METRICS_REQUIRE_KEY``).
        insecure: ``JOBQUEUE_INSECURE``: without keys, answer any ``Host``, not only loopback
            names.
    """

    def __init__(
        self,
        keys: KeyRing,
        sessions: SessionCodec,
        metrics_require_key: bool,
        insecure: bool = False,
    ) -> None:
        self.keys = keys
        self.sessions = sessions
        self.metrics_require_key = metrics_require_key
        self.insecure = insecure

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
            settings.insecure,
        )

    @property
    def enabled(self) -> bool:
        """True when keys are configured (otherwise every request is allowed)."""
        return bool(self.keys)

    def authenticate(self, request: HTTPConnection) -> Principal:
        """Who sent ``request`` (headers and cookies only: the body is never read).

        Raises:
            NotAuthenticated: keys are configured and the request has no valid key or session
                (``reason`` says which).
            PermissionDenied: a state-changing request that is cross-site, or made with a
                session but without its CSRF token.
        """
        unsafe = request.scope.get("method") not in SAFE_METHODS
        if not self.enabled:
            if unsafe and (reason := cross_site_reason(request)):
                raise PermissionDenied(f"refused: {reason}", reason="cross_site", via="open")
            return Principal("anonymous", Role.ADMIN, "open")
        authorizations = request.headers.getlist("authorization")
        if len(authorizations) > 1:  # which one counts would depend on the reader
            raise NotAuthenticated(
                f"the request has {len(authorizations)} Authorization headers: send one",
                invalid_token=True,
                reason="malformed",
            )
        if authorizations:
            return self._bearer(authorizations[0])
        token = request.cookies.get(SESSION_COOKIE)
        if token is None:
            raise NotAuthenticated(
                "this needs an API key: send 'Authorization: Bearer <key>' "
                "(keys are set in JOBQUEUE_API_KEYS)"
            )
        session = self.sessions.verify(token, time.time())
        if session is None:
            raise NotAuthenticated(
                "the dashboard session has ended: log in again at /ui/login",
                reason="invalid_session",
            )
        if unsafe:
            if reason := cross_site_reason(request):
                raise PermissionDenied(
                    f"refused: {reason}",
                    reason="cross_site",
                    key_name=session.name,
                    via="session",
                )
            if not self.sessions.check_csrf(token, request.headers.get(CSRF_HEADER, "")):
                raise PermissionDenied(
                    f"a request made with a dashboard session needs its CSRF token in the "
                    f"{CSRF_HEADER} header (API clients: use 'Authorization: Bearer <key>')",
                    reason="csrf",
                    key_name=session.name,
                    via="session",
                )
        return Principal(session.name, session.role, "session", token)

    def _bearer(self, authorization: str) -> Principal:
        scheme, _, presented = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise NotAuthenticated(
                "send the key as 'Authorization: Bearer <key>'",
                invalid_token=True,
                reason="malformed",
            )
        key = self.keys.match(presented.strip())
        if key is None:
            raise NotAuthenticated(
                "the API key is not valid", invalid_token=True, reason="invalid_key"
            )
        return Principal(key.name, key.role, "bearer", queues=key.queues)

    def authorize(self, principal: Principal, needed: Role) -> Principal:
        """``principal`` when its role includes ``needed``.

        Raises:
            PermissionDenied: it does not; the message names the role needed.
        """
        if not principal.role.allows(needed):
            raise PermissionDenied(
                f"this needs the {needed} role; key {principal.name!r} has the {principal.role} "
                "role",
                reason="role",
                key_name=principal.name,
                via=principal.via,
            )
        return principal

    def check(self, rule: Rule, request: HTTPConnection) -> Principal | None:
        """Apply a route's rule to ``request``: the principal, or None for ``/metrics`` when it
        is open.

        Raises:
            LoginRequired: a dashboard page asked for without credentials.
            NotAuthenticated: 401. PermissionDenied: 403.
        """
        if rule.metrics and not self.metrics_require_key:
            return None
        try:
            principal = self.authenticate(request)
        except NotAuthenticated as exc:
            if rule.login_page and "authorization" not in request.headers:
                raise LoginRequired(str(exc), reason=exc.reason) from None
            raise
        return self.authorize(principal, rule.role)


def access_of(request: HTTPConnection) -> Access:
    """The app's :class:`Access` (built in ``create_app``)."""
    return state_of(request.app).access
