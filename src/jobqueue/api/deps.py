"""Annotated dependency aliases: routes declare what they need, ``create_app`` provides it."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from jobqueue.service import JobService


def get_service(request: Request) -> JobService:
    """The app's :class:`JobService` (built in the lifespan)."""
    service: JobService = request.app.state.service
    return service


Service = Annotated[JobService, Depends(get_service)]
