"""``/ui``: the web dashboard, server-rendered with jinja2 (autoescaped) plus a little JS.

Pages: the overview (``/ui``, live: its script polls ``/ui/api/overview`` every 2 s), the job
list (``/ui/jobs``, filters and keyset pagination) and a job's detail (``/ui/jobs/{id}``,
whose buttons call the JSON API: cancel, retry, enqueue a copy). Templates are in
``api/templates``, scripts and styles in ``api/static`` (served at ``/ui/static``): nothing
is loaded from elsewhere, and the pages' Content-Security-Policy says so.

Access (``api/auth.py``): with ``JOBQUEUE_API_KEYS`` set, every page needs a session from the
login form (``ui_login.py``) or a bearer key, and the buttons follow the key's role: a ``write``
session may enqueue a copy, an ``admin`` one also cancel and retry.

This module only maps: the reads are :class:`jobqueue.dashboard.DashboardService` and
:class:`jobqueue.service.JobService`, and domain errors become error pages with the status
``api/errors.py`` gives them.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from jobqueue import __version__
from jobqueue.access import Role
from jobqueue.api.auth import PageAccess, Principal, ReadAccess, access_of
from jobqueue.api.deps import Service
from jobqueue.api.errors import status_of
from jobqueue.api.ui_schemas import OverviewOut, WorkersOut
from jobqueue.dashboard import DashboardService, format_seconds, timeline
from jobqueue.errors import InvalidJobRequest, JobQueueError
from jobqueue.jobs import JobStatus

API_DIR = Path(__file__).resolve().parents[1]
TEMPLATE_DIR = API_DIR / "templates"
STATIC_DIR = API_DIR / "static"
MAX_ID = 2**63 - 1  # bigint
PAGE_SIZE = 50

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
"""Everything from this origin, no inline script or style: the pages need nothing else."""

router = APIRouter(prefix="/ui", tags=["dashboard"])


def _time(value: datetime | None) -> str:
    return "—" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def _pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATE_DIR),
        autoescape=True,  # every template is HTML: escape everything, whatever its extension
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["time"] = _time
    env.filters["pretty_json"] = _pretty_json
    env.filters["seconds"] = format_seconds
    return env


templates = Jinja2Templates(env=_environment())


def install(app: FastAPI) -> None:
    """Serve the dashboard on ``app``: the static files at ``/ui/static``, the pages, the login
    form, and the JSON job API again under ``/ui/api/jobs`` for the pages' scripts (the
    session cookie's Path is ``/ui``, so a browser sends it nowhere else)."""
    from jobqueue.api.routes import jobs, ui_login

    app.mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="ui-static")
    app.include_router(router)
    app.include_router(jobs.router, prefix="/ui/api", include_in_schema=False)
    ui_login.install(app)


async def get_dashboard(request: Request) -> DashboardService:
    """The app's :class:`DashboardService`, built on first use over the service's engine and
    kept in ``app.state.dashboard`` (rebuilt when a new lifespan brought a new engine)."""
    state = request.app.state
    engine = state.service.engine
    dashboard: DashboardService | None = getattr(state, "dashboard", None)
    if dashboard is None or dashboard.engine is not engine:
        dashboard = DashboardService(engine)
        state.dashboard = dashboard
    return dashboard


Dashboard = Annotated[DashboardService, Depends(get_dashboard)]


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


def _error_page(request: Request, exc: JobQueueError) -> HTMLResponse:
    status = status_of(exc)
    response = render_page(request, "error.html", {"status": status, "message": str(exc)}, status)
    if status == 503:
        response.headers["Retry-After"] = "1"
    return response


def _workers(request: Request) -> WorkersOut | None:
    pool = getattr(request.app.state, "pool", None)
    if pool is None:
        return None
    return WorkersOut(busy=pool.holdings.total_busy, total=pool.concurrency)


@router.get("/api/overview", response_model=OverviewOut, dependencies=[ReadAccess])
async def overview_data(request: Request, dashboard: Dashboard, response: Response) -> OverviewOut:
    """The overview the dashboard's front page shows and polls every 2 s: jobs per queue and
    status, jobs finished per minute over the last hour, the failure rate, busy workers.

    Read at most once a second whatever the number of callers. Errors: 503 database
    unreachable.
    """
    response.headers["Cache-Control"] = "no-store"
    return OverviewOut.of(await dashboard.overview(), _workers(request))


@router.get("", response_class=HTMLResponse, include_in_schema=False, dependencies=[PageAccess])
async def overview_page(request: Request, dashboard: Dashboard) -> HTMLResponse:
    """The overview page (see :func:`overview_data`)."""
    try:
        data = OverviewOut.of(await dashboard.overview(), _workers(request))
    except JobQueueError as exc:
        return _error_page(request, exc)
    return render_page(request, "overview.html", {"nav": "overview", "data": data.for_template()})


@router.get(
    "/jobs", response_class=HTMLResponse, include_in_schema=False, dependencies=[PageAccess]
)
async def jobs_page(
    request: Request,
    dashboard: Dashboard,
    service: Service,
    status: Annotated[str, Query(max_length=20)] = "",
    queue: Annotated[str, Query(max_length=100)] = "",
    task: Annotated[str, Query(max_length=200)] = "",
    q: Annotated[str, Query(max_length=200)] = "",
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> HTMLResponse:
    """The job list: newest first, filtered by status, queue, task and text in the
    description; the "next page" link carries the filters and a keyset cursor."""
    filters = {"status": status, "queue": queue, "task": task, "q": q}
    try:
        try:
            status_filter = JobStatus(status) if status else None
        except ValueError:
            raise InvalidJobRequest(
                f"status {status!r} is not one of {', '.join(JobStatus)}"
            ) from None
        page = await dashboard.search(
            limit=PAGE_SIZE, cursor=cursor, status=status_filter, queue=queue, task=task, text=q
        )
    except JobQueueError as exc:
        return _error_page(request, exc)
    kept = {name: value for name, value in filters.items() if value}
    context = {
        "nav": "jobs",
        "jobs": page.items,
        "filters": filters,
        "statuses": list(JobStatus),
        "tasks": service.registry.names(),
        "filtered": bool(kept),
        "first_query": urlencode(kept),
        "next_query": urlencode({**kept, "cursor": page.next_cursor}) if page.next_cursor else None,
        "paged": cursor is not None,
    }
    return render_page(request, "jobs.html", context)


@router.get(
    "/jobs/{job_id}",
    response_class=HTMLResponse,
    include_in_schema=False,
    dependencies=[PageAccess],
)
async def job_page(request: Request, job_id: str, service: Service) -> HTMLResponse:
    """One job: fields, payload, result, error, attempts, timeline, and the action buttons."""
    number = int(job_id) if job_id.isdigit() and len(job_id) <= 19 else 0
    try:
        if not 1 <= number <= MAX_ID:
            return render_page(
                request, "error.html", {"status": 404, "message": f"no job {job_id!r}"}, 404
            )
        job = await service.get(number)
        attempts = await service.attempts(number)
    except JobQueueError as exc:
        return _error_page(request, exc)
    copy = {
        "task": job.task,
        "queue": job.queue,
        "payload": job.payload,
        "priority": job.priority,
        "description": job.description,
    }
    context = {
        "nav": "jobs",
        "job": job,
        "attempts": attempts,
        "events": timeline(job, attempts),
        "page_data": {"id": job.id, "status": str(job.status), "copy": copy},
        "can_cancel": job.status in (JobStatus.TODO, JobStatus.IN_PROGRESS),
        "can_retry": job.status in (JobStatus.FAILED, JobStatus.CANCELLED),
    }
    return render_page(request, "job.html", context)
