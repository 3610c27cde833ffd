"""``/healthz`` (the process is up) and ``/readyz`` (it can do its work)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from jobqueue.api.deps import Service
from jobqueue.api.schemas import Health
from jobqueue.errors import DatabaseUnavailable

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """Liveness: 200 while the process serves HTTP. Checks nothing else (restart only if down)."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
async def readyz(request: Request, service: Service) -> JSONResponse:
    """Readiness: 200 when the database answers, its schema is at this build's migration head,
    and the worker pool (if any) is running; 503 with the failing check otherwise.
    """
    checks: dict[str, str] = {}
    try:
        revision = await service.schema_revision()
        checks["database"] = "ok"
        expected: str = request.app.state.head_revision
        checks["migrations"] = (
            "ok" if revision == expected else f"at {revision}, expected {expected}: run migrate"
        )
    except DatabaseUnavailable as exc:
        checks["database"] = f"unavailable: {exc}"
    pool = request.app.state.pool
    if pool is not None:
        checks["workers"] = "ok" if pool.healthy else f"stopped: {pool.failure or 'shutting down'}"
    ok = all(value == "ok" for value in checks.values())
    body = Health(status="ok" if ok else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)
