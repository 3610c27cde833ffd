"""``/healthz`` (liveness: restart me) and ``/readyz`` (readiness: send me work).

Which probe for what (docs/deploy.md, "Probes"): point the orchestrator's liveness probe at
``/healthz`` (it fails only when a background loop has kept failing for
``JOBQUEUE_UNHEALTHY_AFTER_SECONDS``: a restart may help), and the readiness probe or the load
balancer's health check at ``/readyz`` (it fails while the database is unreachable, the schema
is not at this build's migration, a loop is down, or LISTEN is reconnecting or hears nothing;
in poll-only mode, ``JOBQUEUE_LISTEN=false``, there is no LISTEN check).

Both are open (no key needed), so their answers hold fixed words and names only: why a loop
failed or the database is away (driver messages, exception text) goes to the log, never to the
caller.
"""

from __future__ import annotations

import structlog
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from jobqueue.api.deps import State
from jobqueue.api.schemas import Health
from jobqueue.db.engine import DRIVER_ERRORS
from jobqueue.errors import DatabaseUnavailable
from jobqueue.logs import Throttled
from jobqueue.notify import Listener

log = structlog.get_logger(__name__)

router = APIRouter(tags=["health"])

_RESPONSES: dict[int | str, dict[str, object]] = {503: {"model": Health}}

# A probe may be asked for in a loop by anyone: its log lines are throttled.
_log_database = Throttled("readyz_database_unavailable")


def _listen_check(listener: Listener) -> str:
    """``ok``; ``not receiving`` while the listener's pings do not come back (LISTEN behind
    pgbouncer in transaction mode: ``listen_not_receiving`` in the log), also between its
    reconnects; ``reconnecting`` while the connection is being reopened or not yet tested."""
    if listener.connected:
        return "ok"
    return "reconnecting" if listener.receiving else "not receiving"


def _answer(checks: dict[str, str]) -> JSONResponse:
    ok = all(value == "ok" for value in checks.values())
    body = Health(status="ok" if ok else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


@router.get("/healthz", response_model=Health, responses=_RESPONSES)
async def healthz(state: State) -> JSONResponse:
    """Liveness: 200 while the process serves HTTP and its background loops recover; 503 when
    a loop has kept failing for longer than ``JOBQUEUE_UNHEALTHY_AFTER_SECONDS`` (the body
    names it; why is in the log, ``loop_crashed``): restart the process. A database outage alone
    never fails it."""
    runtime = state.runtime
    checks: dict[str, str] = {}
    if runtime is not None:
        failing = runtime.loops.failing_for(state.settings.unhealthy_after_seconds)
        checks.update({f"loop:{name}": "failing: restart the process" for name in sorted(failing)})
    return _answer(checks)


@router.get("/readyz", response_model=Health, responses=_RESPONSES)
async def readyz(state: State) -> JSONResponse:
    """Readiness: 200 when the database answers, its schema is at this build's migration
    head, every background loop runs and LISTEN is connected and hears its own pings (no
    ``listen`` check in poll-only mode); 503 naming the failing check otherwise
    (``"database": "unavailable"``, ``"loops": "down: listen"``, ``"listen": "not receiving"``;
    the causes are in the log), a database error included (never a 500)."""
    runtime = state.runtime
    if runtime is None:
        return _answer({"service": "starting or stopping"})
    checks: dict[str, str] = {}
    try:
        revision = await runtime.service.schema_revision()
        checks["database"] = "ok"
        expected = runtime.head_revision
        checks["migrations"] = (
            "ok" if revision == expected else f"at {revision}, expected {expected}: run migrate"
        )
    except DatabaseUnavailable as exc:
        _log_database(error=str(exc))
        checks["database"] = "unavailable"
    except DRIVER_ERRORS as exc:  # never a 500: the probe answers, and the log has the details
        _log_database(error=f"{type(exc).__name__}: {str(exc)[:2000]}")
        checks["database"] = "unavailable"
    if runtime.listener is not None:
        checks["listen"] = _listen_check(runtime.listener)
    down = runtime.loops.down()
    checks["loops"] = "ok" if not down else f"down: {', '.join(sorted(down))}"
    return _answer(checks)
