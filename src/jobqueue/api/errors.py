"""Domain errors to HTTP responses: the one place that knows status codes.

| error               | status |
|---------------------|--------|
| JobNotFound         | 404    |
| PayloadTooLarge     | 413    |
| InvalidJobRequest   | 422    |
| InvalidCursor       | 400    |
| JobStateConflict    | 409    |
| IdempotencyConflict | 409    |
| DatabaseUnavailable | 503 (with ``Retry-After: 1``), a fixed message; the cause is logged |
| NotAuthenticated    | 401 (with ``WWW-Authenticate: Bearer``, RFC 6750) |
| PermissionDenied    | 403    |
| MisdirectedRequest  | 421 (RFC 9110, section 15.5.20) |
| malformed JSON      | 400    |
| body not sent as JSON | 415  |
| schema violations   | 422 (FastAPI's list of ``{loc, msg, type}``) |

Bodies are ``{"detail": ...}`` like FastAPI's own errors. A 503 never carries the driver's
words (``database "x" is not currently accepting connections``, class names): they would tell an
unauthenticated caller about the deployment, and they are in the log instead
(``database_unavailable``, at most once a second).
"""

from __future__ import annotations

import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from jobqueue.errors import (
    DatabaseUnavailable,
    IdempotencyConflict,
    InvalidCursor,
    InvalidJobRequest,
    JobNotFound,
    JobQueueError,
    JobStateConflict,
    MisdirectedRequest,
    NotAuthenticated,
    PayloadTooLarge,
    PermissionDenied,
)
from jobqueue.logs import Throttled

DATABASE_UNREACHABLE = "the database is not reachable; retry"
DATABASE_BUSY = "every database connection of this service is busy; retry"

_log_unavailable = Throttled("database_unavailable")


class ServiceNotReady(DatabaseUnavailable):
    """The service is starting or stopping: the lifespan has not built (or has ended) what the
    routes need. Its message is fixed, so it is sent as it is."""

    def __init__(self) -> None:
        super().__init__("the service is starting or stopping; retry")


STATUS_BY_ERROR: list[tuple[type[JobQueueError], int]] = [
    (JobNotFound, 404),
    (PayloadTooLarge, 413),
    (InvalidJobRequest, 422),
    (InvalidCursor, 400),
    (JobStateConflict, 409),
    (IdempotencyConflict, 409),
    (DatabaseUnavailable, 503),
    (NotAuthenticated, 401),
    (PermissionDenied, 403),
    (MisdirectedRequest, 421),
]


def status_of(exc: JobQueueError) -> int:
    """The HTTP status for a domain error (500 for one without a mapping)."""
    for error_type, status in STATUS_BY_ERROR:
        if isinstance(exc, error_type):
            return status
    return 500


def detail_of(exc: JobQueueError) -> str:
    """The message a client gets for ``exc``: its own words, except for a database that is
    away, whose cause is logged and replaced by a fixed sentence."""
    if not isinstance(exc, DatabaseUnavailable) or isinstance(exc, ServiceNotReady):
        return str(exc)
    _log_unavailable(error=str(exc))
    if isinstance(exc.__cause__, sqlalchemy.exc.TimeoutError):
        return DATABASE_BUSY  # the pool's wait ran out: load, not an outage
    return DATABASE_UNREACHABLE


def error_response(exc: JobQueueError) -> JSONResponse:
    """The JSON response for a domain error: ``{"detail": ...}``, its status and headers."""
    return JSONResponse(
        {"detail": detail_of(exc)}, status_code=status_of(exc), headers=headers_of(exc)
    )


async def _domain_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, JobQueueError)
    return error_response(exc)


def headers_of(exc: JobQueueError) -> dict[str, str] | None:
    """The headers that go with a domain error's response: ``Retry-After`` on a 503,
    ``WWW-Authenticate`` on a 401 (RFC 6750 section 3)."""
    if isinstance(exc, NotAuthenticated):
        challenge = 'Bearer realm="jobqueue"'
        if exc.invalid_token:
            challenge += ', error="invalid_token"'
        return {"WWW-Authenticate": challenge}
    if status_of(exc) == 503:
        return {"Retry-After": "1"}
    return None


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(error.get("type") == "model_attributes_type" for error in errors):
        content_type = request.headers.get("content-type", "")
        if "json" not in content_type:
            return JSONResponse(
                {
                    "detail": f"send the body as JSON with 'Content-Type: application/json' "
                    f"(got {content_type or 'no Content-Type'!r})"
                },
                status_code=415,
            )
        return JSONResponse({"detail": "the request body must be a JSON object"}, status_code=422)
    if any(error.get("type") == "json_invalid" for error in errors):
        first = errors[0]
        message = str(first.get("ctx", {}).get("error", "")) or "a syntax error"
        return JSONResponse(
            {"detail": f"the request body is not valid JSON: {message}"}, status_code=400
        )
    cleaned = [{k: v for k, v in error.items() if k != "input"} for error in errors]
    return JSONResponse({"detail": jsonable_encoder(cleaned)}, status_code=422)


# FastAPI's words when json.loads fails with something other than a syntax error: nesting past
# the recursion limit, or an integer longer than Python's int-parsing limit (4300 digits).
_FASTAPI_PARSE_ERROR = "There was an error parsing the body"


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and exc.detail == _FASTAPI_PARSE_ERROR:
        return JSONResponse(
            {
                "detail": "the request body could not be parsed as JSON: it may not be valid "
                "UTF-8, nest deeper than about 1000 levels, or hold an integer of more than "
                "4300 digits"
            },
            status_code=400,
        )
    return await http_exception_handler(request, exc)


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(JobQueueError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
