"""Annotated dependency aliases: routes declare what they need, ``create_app`` provides it.

Every alias is resolved by an ``async`` function on purpose: FastAPI runs a plain ``def``
dependency in a worker thread, a thread hop on every request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from jobqueue.api.errors import ServiceNotReady
from jobqueue.api.state import AppState, Runtime, state_of
from jobqueue.service import JobService
from jobqueue.service.dashboard import DashboardService


async def get_state(request: Request) -> AppState:
    """The app's :class:`AppState`."""
    return state_of(request.app)


async def get_runtime(request: Request) -> Runtime:
    """The running app's :class:`Runtime`.

    Raises:
        ServiceNotReady: the lifespan has not started the service (or has stopped it).
    """
    runtime = state_of(request.app).runtime
    if runtime is None:
        raise ServiceNotReady()
    return runtime


async def get_service(request: Request) -> JobService:
    """The app's :class:`JobService` (built in the lifespan)."""
    return (await get_runtime(request)).service


async def get_dashboard(request: Request) -> DashboardService:
    """The app's :class:`DashboardService` (built in the lifespan)."""
    return (await get_runtime(request)).dashboard


State = Annotated[AppState, Depends(get_state)]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
Service = Annotated[JobService, Depends(get_service)]
Dashboard = Annotated[DashboardService, Depends(get_dashboard)]
