"""``/jobs``: create, read and list jobs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response, status

from jobqueue.api.deps import Service
from jobqueue.api.schemas import ErrorOut, JobCreate, JobOut, JobPage
from jobqueue.jobs import JobStatus
from jobqueue.service import JobRequest

router = APIRouter(prefix="/jobs", tags=["jobs"])

MAX_ID = 2**63 - 1  # bigint
JobId = Annotated[int, Path(ge=1, le=MAX_ID, description="The job's id.")]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=JobOut,
    responses={
        400: {"model": ErrorOut, "description": "The body is not valid JSON."},
        413: {"model": ErrorOut, "description": "The payload is over the limit."},
        422: {"model": ErrorOut, "description": "A field is wrong; the detail says which."},
        503: {"model": ErrorOut, "description": "The database is not reachable; retry."},
    },
)
async def create_job(
    body: JobCreate, service: Service, request: Request, response: Response
) -> JobOut:
    """Create a job in status ``todo``; a worker picks it up within milliseconds.

    The body ``{"description": "Process this task"}`` alone creates an ``echo`` job. Answers
    201 with the job and a ``Location`` header naming ``/jobs/{id}``.

    Errors: 400 malformed JSON; 422 unknown task (the message lists the known ones), wrong
    types, U+0000 in a string, a non-object payload; 413 payload over
    ``JOBQUEUE_MAX_PAYLOAD_BYTES``; 503 database unreachable. No error creates a row.
    """
    job = await service.create(
        JobRequest(
            task=body.task,
            payload=body.payload,
            queue=body.queue,
            priority=body.priority,
            description=body.description,
            max_attempts=body.max_attempts,
            timeout_seconds=body.timeout_seconds,
        )
    )
    response.headers["Location"] = str(request.url_for("get_job", job_id=job.id).path)
    return JobOut.of(job)


@router.get("", response_model=JobPage, responses={400: {"model": ErrorOut}})
async def list_jobs(
    service: Service,
    status: Annotated[JobStatus | None, Query(description="Only jobs in this status.")] = None,
    queue: Annotated[str | None, Query(max_length=100, description="Only this queue.")] = None,
    task: Annotated[str | None, Query(max_length=200, description="Only this task.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Page size.")] = 50,
    cursor: Annotated[
        str | None, Query(max_length=200, description="next_cursor of the previous page.")
    ] = None,
) -> JobPage:
    """List jobs newest first, with keyset pagination.

    Pass the response's ``next_cursor`` as ``cursor`` to get the next page (``null`` on the last
    page). Pages are stable under concurrent inserts: no job is skipped or repeated.

    Errors: 400 a cursor this service did not issue; 422 a bad filter or ``limit`` outside
    1..1000.
    """
    page = await service.list(limit=limit, cursor=cursor, status=status, queue=queue, task=task)
    return JobPage(items=[JobOut.of(job) for job in page.items], next_cursor=page.next_cursor)


@router.get("/{job_id}", response_model=JobOut, responses={404: {"model": ErrorOut}})
async def get_job(job_id: JobId, service: Service) -> JobOut:
    """One job by id. Errors: 404 when there is none; 422 when the id is not a positive integer."""
    return JobOut.of(await service.get(job_id))
