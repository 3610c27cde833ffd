"""``/metrics``: Prometheus text format (see ``docs/metrics.md``)."""

from __future__ import annotations

import contextlib

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from jobqueue.access import Role
from jobqueue.api.auth import ACCESS_RESPONSES, needs
from jobqueue.api.deps import State
from jobqueue.api.guard import GuardedRoute
from jobqueue.errors import DatabaseUnavailable

router = APIRouter(tags=["health"], route_class=GuardedRoute)


@router.get(
    "/metrics",
    response_class=Response,
    responses=ACCESS_RESPONSES,
    openapi_extra=needs(Role.READ, metrics=True),
)
async def metrics(state: State) -> Response:
    """Every metric in the Prometheus text format (version 0.0.4).

    The table gauges (``jobqueue_jobs``, ``jobqueue_oldest_todo_age_seconds``,
    ``jobqueue_jobs_without_worker``) come from grouped queries cached for 2 seconds and shared
    by concurrent scrapes; when the database is away they keep their last values and the
    counters are still served. The text itself is built in a worker thread by one scrape at a
    time and served from cache for 1 second, so a flood of scrapes neither repeats the work
    nor blocks the event loop; queue and task labels are bounded (``docs/metrics.md``). Open
    like ``/healthz``: it holds counts, no job data; with ``JOBQUEUE_METRICS_REQUIRE_KEY=true``
    it needs a key with the ``read`` role (see docs/security.md).
    """
    if state.runtime is not None:
        with contextlib.suppress(DatabaseUnavailable):
            await state.runtime.service.refresh_table_stats()
    return Response(await state.metrics.scrape(), media_type=CONTENT_TYPE_LATEST)
