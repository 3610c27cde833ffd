"""The floor of HTTP enqueue: a bare FastAPI endpoint that takes and returns a small pydantic
model, under uvicorn with httptools and uvloop (jobqueue's own server stack), no middleware and
no database. ``make bench`` loads it with the same requests as jobqueue's ``POST /jobs`` in the
same run: what jobqueue spends above it is the enqueue path's own cost (issue 13)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field

app = FastAPI()


class JobIn(BaseModel):
    """The request's shape: the body jobqueue's bench sends (``{"task": "noop"}``)."""

    task: str
    payload: dict[str, Any] = Field(default_factory=dict)


@app.post("/jobs", status_code=201)
async def create(job: JobIn) -> JobIn:
    """Answer the job as it came."""
    return job


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    """The load generator's warm-up request."""
    return {"status": "ok"}
