"""Annotated dependency aliases: routes declare what they need, ``create_app`` provides it."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from jobqueue.service import JobService


async def get_service(request: Request) -> JobService:
    """The app's :class:`JobService` (built in the lifespan).

    ``async`` on purpose: FastAPI runs a plain ``def`` dependency in a worker thread, a thread
    hop on every request.
    """
    service: JobService = request.app.state.service
    return service


Service = Annotated[JobService, Depends(get_service)]
