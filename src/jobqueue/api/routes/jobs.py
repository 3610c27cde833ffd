"""``/jobs``: create (one or a batch), read (optionally waiting), list, attempts, cancel, retry.

Roles (``api/auth.py``): the reads need ``read``, creating needs ``write``, cancel and retry need
``admin``; without configured keys everything is allowed. Each route declares its role with
``openapi_extra=needs(...)``; the router's route class checks it before the body is read
(``api/guard.py``), so no route here spends a dependency on it, and then checks that a body is
UTF-8 JSON whose objects name no key twice (``api/bodies.py``). The request models and URL
parameters are strict (``api/schemas.py``). Cancel and retry leave an ``audit`` log event
(``api/audit.py``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request, Response, status
from starlette.convertors import Convertor, register_url_convertor

from jobqueue.access import Role
from jobqueue.api.audit import audited
from jobqueue.api.auth import ACCESS_RESPONSES, needs
from jobqueue.api.bodies import Utf8JsonRoute
from jobqueue.api.deps import Service
from jobqueue.api.disconnect import CLIENT_CLOSED_REQUEST, unless_disconnected
from jobqueue.api.guard import GuardedRoute
from jobqueue.api.schemas import (
    MAX_IDEMPOTENCY_KEY_LENGTH,
    MAX_QUEUE_LENGTH,
    MAX_TASK_LENGTH,
    AttemptList,
    AttemptOut,
    BatchCreate,
    BatchOut,
    BigintDigits,
    DecimalInteger,
    DecimalSeconds,
    ErrorOut,
    IdempotencyKeyHeader,
    JobCreate,
    JobOut,
    JobPage,
)
from jobqueue.encoding import MAX_ID
from jobqueue.errors import InvalidJobRequest
from jobqueue.jobs import QUEUE_NAME_PATTERN, TASK_NAME_PATTERN, JobFilter, JobStatus
from jobqueue.service import JobRequest


class JobsRoute(GuardedRoute, Utf8JsonRoute):
    """The job routes: the access check first (from the headers, before a byte of the body is
    read), then the body's UTF-8 and duplicate key checks."""


class JobIdConvertor(Convertor[str]):
    """A job id in a URL path (``{job_id:job_id}``): ASCII decimal digits, passed on as text.

    Starlette's ``int`` convertor calls ``int()`` on the digits, which refuses more than 4,300
    of them with a ``ValueError``: ``GET /jobs/<4301 digits>`` was a 500, also without a key.
    Here any number of digits matches, and :data:`JobId` checks the range: 0, 2^63 and more
    digits than a ``bigint`` has are all a 422 that names the bound. A path that is not digits
    (``/jobs/batch``, ``/jobs/²``) matches no id route, as before.
    """

    regex = "[0-9]+"

    def convert(self, value: str) -> str:
        """The matched digits, unchanged (never ``int()`` here: see the class)."""
        return value

    def to_string(self, value: object) -> str:
        """An id (``int`` or digits) as it goes in a URL, for ``url_path_for``."""
        return str(value)


register_url_convertor("job_id", JobIdConvertor())

router = APIRouter(prefix="/jobs", tags=["jobs"], responses=ACCESS_RESPONSES, route_class=JobsRoute)

JobId = Annotated[int, Path(ge=1, le=MAX_ID, description="The job's id."), BigintDigits]


WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {
        "model": ErrorOut,
        "description": "The body is not valid JSON, not encoded as UTF-8 without a byte "
        "order mark (RFC 8259, section 8.1), or has an object naming a key twice.",
    },
    408: {
        "model": ErrorOut,
        "description": "The body did not arrive within JOBQUEUE_BODY_TIMEOUT_SECONDS (default "
        "30 s) of the headers; the connection is closed.",
    },
    409: {"model": ErrorOut, "description": "Idempotency key reused for a different job."},
    413: {
        "model": ErrorOut,
        "description": "The request body is over JOBQUEUE_MAX_REQUEST_BYTES (default 16 MiB; "
        "refused before it is read), or a payload is over JOBQUEUE_MAX_PAYLOAD_BYTES.",
    },
    415: {"model": ErrorOut, "description": "The body was not sent as application/json."},
    422: {
        "model": ErrorOut,
        "description": "A field is wrong; the detail says which. A schema violation's detail "
        "lists at most 20 errors; when there were more, error_count gives how many.",
    },
    503: {
        "model": ErrorOut,
        "description": "The database is not reachable, or the service is receiving as many "
        "request bodies as it takes at once (JOBQUEUE_MAX_REQUEST_BYTES_IN_FLIGHT); retry after "
        "Retry-After seconds.",
    },
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorOut}}


def _request(body: JobCreate, idempotency_key: str | None = None) -> JobRequest:
    return JobRequest(
        task=body.task,
        payload=body.payload,
        queue=body.queue,
        priority=body.priority,
        description=body.description,
        max_attempts=body.max_attempts,
        timeout_seconds=body.timeout_seconds,
        delay_seconds=body.delay_seconds,
        run_at=body.run_at,
        idempotency_key=idempotency_key or body.idempotency_key,
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=JobOut,
    responses={
        200: {"model": JobOut, "description": "The idempotency key names this existing job."},
        **WRITE_ERRORS,
    },
    openapi_extra=needs(Role.WRITE),
)
async def create_job(
    body: JobCreate,
    service: Service,
    request: Request,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=MAX_IDEMPOTENCY_KEY_LENGTH,
            description="IETF draft-ietf-httpapi-idempotency-key-header: requests with the same "
            "key create one job. Visible ASCII, sent once.",
        ),
        IdempotencyKeyHeader,
    ] = None,
) -> Response:
    """Create a job in status ``todo``; an idle worker starts it within milliseconds.

    The body ``{"description": "Process this task"}`` alone creates an ``echo`` job. Answers
    201 with the job and a ``Location`` header naming ``/jobs/{id}``. ``run_at`` (RFC 3339 with
    an offset) or ``delay_seconds`` defer the first run.

    Idempotency: with an ``Idempotency-Key`` header (or ``idempotency_key`` field) that already
    names a job with the same task, queue and payload, nothing is created and the answer is 200
    with that job; with a different task, queue or payload it is 409. A key holds as long as
    its job row exists. The header must be sent once, in visible ASCII (422 otherwise: a
    header's other bytes arrive as Latin-1); the field takes any text.

    Errors: 400 malformed JSON, a body not encoded as UTF-8 (UTF-16, UTF-32, a byte order
    mark), or an object in it naming a key twice (``{"task": "a", "task": "b"}``: the message
    names the key and the object); 415 not sent as JSON; 422 unknown task or queue (the
    message lists the known ones: ``JOBQUEUE_QUEUES`` and ``JOBQUEUE_REMOTE_QUEUES``), wrong
    types (strict: ``true`` is not a number, ``"5"`` is not an integer), U+0000 in a string,
    a non-object payload, a ``run_at`` that is not an RFC 3339 date-time with an offset (a
    Unix timestamp, a date alone, a naive time), both ``run_at`` and ``delay_seconds``, a
    payload nesting deeper than ``JOBQUEUE_MAX_PAYLOAD_DEPTH``, two ``Idempotency-Key``
    headers or one that is not visible ASCII (a schema violation's 422 lists at most 20
    errors, with ``error_count`` when there were more); 413 payload over
    ``JOBQUEUE_MAX_PAYLOAD_BYTES`` or body over ``JOBQUEUE_MAX_REQUEST_BYTES``; 408 body not
    received within ``JOBQUEUE_BODY_TIMEOUT_SECONDS``; 409 idempotency conflict; 503 database
    unreachable, or the bodies in flight at their budget. No error creates a row.
    """
    sent = len(request.headers.getlist("idempotency-key"))
    if sent > 1:
        raise InvalidJobRequest(
            f"the request has {sent} Idempotency-Key headers: send one (which of them would "
            "count is ambiguous)"
        )
    if idempotency_key and body.idempotency_key and idempotency_key != body.idempotency_key:
        raise InvalidJobRequest(
            "the Idempotency-Key header and the idempotency_key field differ: send one of them"
        )
    created = await service.create(_request(body, idempotency_key))
    # Serialized here, once: a returned model would be validated and serialized again by
    # FastAPI against response_model (about 5 % of the enqueue's CPU, bench.profile).
    return Response(
        JobOut.of(created.job).model_dump_json().encode(),
        status_code=status.HTTP_201_CREATED if created.created else status.HTTP_200_OK,
        headers={"Location": f"{request.scope.get('root_path', '')}/jobs/{created.job.id}"},
        media_type="application/json",
    )


@router.post(
    "/batch",
    status_code=status.HTTP_201_CREATED,
    response_model=BatchOut,
    responses={
        200: {
            "model": BatchOut,
            "description": "Every spec's idempotency key names an existing matching job: "
            "nothing was created (a replay).",
        },
        **WRITE_ERRORS,
    },
    openapi_extra=needs(Role.WRITE),
)
async def create_jobs(
    body: BatchCreate,
    service: Service,
    response: Response,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            include_in_schema=False,
            description="Not supported here: set idempotency_key per job.",
        ),
    ] = None,
) -> BatchOut:
    """Create 1 to 10,000 jobs all or nothing, with one INSERT per 1,000 and one NOTIFY.

    Answers 201 with ``{"ids": [...]}`` in request order (ids only: a batch of 10,000 full jobs
    would cost more to send than to store). A spec whose ``idempotency_key`` names an existing
    matching job gives that job's id instead of a new one. When that is so for every spec,
    nothing is created and the answer is 200, as for a replay of ``POST /jobs``: a batch sent
    again after a lost answer gets the same ids with 200; 201 means at least one job was
    created.

    Errors: as ``POST /jobs``; a bad spec fails the whole batch, and the message (or the
    ``loc`` of a 422) names its index, e.g. ``jobs[3]: unknown queue 'x'…``,
    ``jobs[1]: idempotency key 'k' was used for job 7 with a different payload…`` (409) or
    ``["body", "jobs", 3, "priority"]``. The ``Idempotency-Key`` header is refused here
    (422): a key belongs to one job, so set ``idempotency_key`` on each spec.
    """
    if idempotency_key is not None:
        raise InvalidJobRequest(
            "the Idempotency-Key header is not supported on /jobs/batch: set idempotency_key on "
            "each job of the batch instead"
        )
    batch = await service.create_batch([_request(spec) for spec in body.jobs])
    if batch.created == 0:
        response.status_code = status.HTTP_200_OK
    return BatchOut(ids=batch.ids)


@router.get(
    "", response_model=JobPage, responses={400: {"model": ErrorOut}}, openapi_extra=needs(Role.READ)
)
async def list_jobs(
    service: Service,
    status: Annotated[JobStatus | None, Query(description="Only jobs in this status.")] = None,
    queue: Annotated[
        str | None,
        Query(
            max_length=MAX_QUEUE_LENGTH, pattern=QUEUE_NAME_PATTERN, description="Only this queue."
        ),
    ] = None,
    task: Annotated[
        str | None,
        Query(max_length=MAX_TASK_LENGTH, pattern=TASK_NAME_PATTERN, description="Only this task."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Page size."), DecimalInteger] = 50,
    cursor: Annotated[
        str | None, Query(max_length=200, description="next_cursor of the previous page.")
    ] = None,
) -> JobPage:
    """List jobs newest first, with keyset pagination.

    Pass the response's ``next_cursor`` as ``cursor`` to get the next page (``null`` on the last
    page). Pages are stable under concurrent inserts: no job is skipped or repeated.

    A page holds at most ``limit`` jobs and at most ``JOBQUEUE_MAX_PAGE_BYTES`` (default 8 MiB)
    of payload and result JSON together, but always one job, however large (up to
    ``JOBQUEUE_MAX_PAYLOAD_BYTES`` and ``JOBQUEUE_MAX_RESULT_BYTES``, 1 MiB each by default).
    So a page may hold fewer than ``limit`` jobs and still have a ``next_cursor``: page on until
    it is ``null``. The budget is applied in the database (docs/jobs.md, "Sizes").

    A ``queue`` filter may name any well-formed queue, also one no longer configured (its old
    jobs can still be listed): an unknown queue simply gives an empty page.

    Errors: 400 a cursor this service did not issue; 422 a bad filter or ``limit`` outside
    1..1000.
    """
    page = await service.list(JobFilter(status, queue, task), limit=limit, cursor=cursor)
    return JobPage(items=[JobOut.of(job) for job in page.items], next_cursor=page.next_cursor)


@router.get(
    "/{job_id:job_id}",
    response_model=JobOut,
    responses={
        **NOT_FOUND,
        429: {
            "model": ErrorOut,
            "description": "JOBQUEUE_MAX_LONG_POLLS long-polls wait already on this process; "
            "retry after Retry-After seconds.",
        },
    },
    openapi_extra=needs(Role.READ),
)
async def get_job(
    job_id: JobId,
    service: Service,
    request: Request,
    wait_seconds: Annotated[
        float | None,
        Query(
            gt=0,
            le=60,
            allow_inf_nan=False,
            description="Long-poll: answer once the job is done, failed or cancelled, or after "
            "this many seconds (up to 60) with its status then.",
        ),
        DecimalSeconds,
    ] = None,
) -> Any:
    """One job by id; with ``wait_seconds`` a long-poll for its final status.

    The wait is woken by the NOTIFY the worker sends when the job finishes, not by polling,
    and ends as soon as the client disconnects (the ASGI ``http.disconnect`` message; logged
    with status 499). At most ``JOBQUEUE_MAX_LONG_POLLS`` requests wait at once per process.

    Errors: 404 when there is none, or the id is not a number (``/jobs/batch`` is the batch
    route: ``GET`` there is 405); 422 when the id is 0 or past 2^63-1 (however many digits it
    has) or ``wait_seconds`` is not decimal seconds in (0, 60]; 429 (with ``Retry-After``) when
    the process's long-poll slots are all taken. ``HEAD`` answers as ``GET`` without content.
    """
    if wait_seconds is None:
        return JobOut.of(await service.get(job_id))
    job = await unless_disconnected(request.receive, service.wait(job_id, wait_seconds))
    if job is None:
        return Response(status_code=CLIENT_CLOSED_REQUEST)
    return JobOut.of(job)


@router.get(
    "/{job_id:job_id}/attempts",
    response_model=AttemptList,
    responses=NOT_FOUND,
    openapi_extra=needs(Role.READ),
)
async def list_attempts(job_id: JobId, service: Service) -> AttemptList:
    """Every attempt of the job, oldest first, with worker, times, outcome and error (type,
    message, trimmed traceback). Errors: 404 when there is no such job.
    """
    return AttemptList(items=[AttemptOut.of(a) for a in await service.attempts(job_id)])


@router.post(
    "/{job_id:job_id}/cancel",
    response_model=JobOut,
    responses={
        202: {"model": JobOut, "description": "Running: cancellation sent to its worker."},
        404: {"model": ErrorOut},
        409: {"model": ErrorOut, "description": "The job is done or failed."},
    },
    openapi_extra=needs(Role.ADMIN),
)
async def cancel_job(
    job_id: JobId, service: Service, request: Request, response: Response
) -> JobOut:
    """Cancel a job.

    - ``todo``: it becomes ``cancelled`` at once (200).
    - ``in_progress``: the process running it is told (NOTIFY) and cancels the attempt within
      a second; the job then ends ``cancelled`` (202, with ``cancel_requested_at`` set). An
      attempt that completes before the cancel arrives wins. A plain (sync) task cannot be
      interrupted: its attempt is marked cancelled and its late result ignored.
    - ``cancelled``: nothing changes (200).
    - ``done`` or ``failed``: 409.

    Logged as an ``audit`` event (who, ``cancel``, the job id, the outcome).
    """
    with audited(request, "cancel", job_id) as record:
        record.job = job = await service.cancel(job_id)
    if job.status is JobStatus.IN_PROGRESS:
        response.status_code = status.HTTP_202_ACCEPTED
    return JobOut.of(job)


@router.post(
    "/{job_id:job_id}/retry",
    response_model=JobOut,
    responses={404: {"model": ErrorOut}, 409: {"model": ErrorOut}},
    openapi_extra=needs(Role.ADMIN),
)
async def retry_job(job_id: JobId, service: Service, request: Request) -> JobOut:
    """Put a ``failed`` or ``cancelled`` job back to ``todo`` with fresh attempts (its attempt
    history stays). Logged as an ``audit`` event. Errors: 404 no such job; 409 any other
    status.
    """
    with audited(request, "retry", job_id) as record:
        record.job = job = await service.retry(job_id)
    return JobOut.of(job)
