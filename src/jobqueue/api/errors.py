"""Domain errors to HTTP responses: the one place that knows status codes.

| error               | status |
|---------------------|--------|
| JobNotFound         | 404    |
| QueueNotFound       | 404    |
| ScheduleNotFound    | 404    |
| ScheduleExists      | 409    |
| PayloadTooLarge     | 413    |
| InvalidJobRequest   | 422    |
| InvalidCursor       | 400    |
| BodyNotUtf8         | 400    |
| DuplicateKey        | 400    |
| ContentEncodingNotSupported | 415 |
| TooManyWaiting      | 429 (with ``Retry-After``, RFC 6585 section 4) |
| JobStateConflict    | 409    |
| IdempotencyConflict | 409    |
| LeaseNotFound       | 404    |
| LeaseLost           | 409, with ``"code": "lease_lost"`` |
| DatabaseUnavailable | 503 (with ``Retry-After: 1``), a fixed message; the cause is logged |
| any other driver error (asyncpg, SQLAlchemy) | 503 (with ``Retry-After: 1``), a fixed detail |
| NotAuthenticated    | 401 (with ``WWW-Authenticate: Bearer``, RFC 6750) |
| PermissionDenied    | 403    |
| MisdirectedRequest  | 421 (RFC 9110, section 15.5.20) |
| MalformedHost       | 400 (RFC 9112, section 3.2) |
| malformed JSON      | 400    |
| body not sent as JSON | 415  |
| schema violations   | 422 (FastAPI's list of ``{loc, msg, type}``, bounded: see below) |

Bodies are ``{"detail": ...}`` like FastAPI's own errors. A schema violation's 422 is bounded
whatever the request: it lists at most :data:`MAX_LISTED_ERRORS` errors and, when there were
more, adds ``"error_count"`` (how many there were) and a ``"note"`` saying the rest were left out;
an error's ``input`` is never sent, its ``msg`` is cut at :data:`MAX_MESSAGE_CHARS` characters,
its ``loc`` at :data:`MAX_LOC_ITEMS` items of at most :data:`MAX_LOC_PART_CHARS` characters
(an unknown field's name is client text), and its ``ctx`` values like ``loc``'s parts. A batch
of 10,000 bad jobs is answered in about 2 KB, not 1.1 MB.

A 503 never carries the driver's words (``database "x" is not currently accepting
connections``, class names): they would tell an unauthenticated caller about the deployment,
and they are in the log instead (``database_unavailable``, at most once a second).
"""

from __future__ import annotations

import math
import traceback
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy.exc
import structlog
from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from jobqueue.api.bodies import declares_json
from jobqueue.api.methods import allowed_methods
from jobqueue.db.engine import DRIVER_ERRORS
from jobqueue.errors import (
    BodyNotUtf8,
    ContentEncodingNotSupported,
    DatabaseUnavailable,
    DuplicateKey,
    IdempotencyConflict,
    InvalidCursor,
    InvalidJobRequest,
    JobNotFound,
    JobQueueError,
    JobStateConflict,
    LeaseLost,
    LeaseNotFound,
    MalformedHost,
    MisdirectedRequest,
    NotAuthenticated,
    PayloadTooLarge,
    PermissionDenied,
    QueueNotFound,
    ScheduleExists,
    ScheduleNotFound,
    TooManyWaiting,
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
    (QueueNotFound, 404),
    (ScheduleNotFound, 404),
    (ScheduleExists, 409),
    (PayloadTooLarge, 413),
    (InvalidJobRequest, 422),
    (InvalidCursor, 400),
    (BodyNotUtf8, 400),
    (DuplicateKey, 400),
    (ContentEncodingNotSupported, 415),
    (TooManyWaiting, 429),
    (JobStateConflict, 409),
    (IdempotencyConflict, 409),
    (LeaseNotFound, 404),
    (LeaseLost, 409),
    (DatabaseUnavailable, 503),
    (NotAuthenticated, 401),
    (PermissionDenied, 403),
    (MisdirectedRequest, 421),
    (MalformedHost, 400),
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
    """The JSON response for a domain error: ``{"detail": ...}`` (and ``"code"`` for an error
    that has one, e.g. ``lease_lost``), its status and headers."""
    body: dict[str, Any] = {"detail": detail_of(exc)}
    if isinstance(exc, LeaseLost):
        body["code"] = exc.code
    return JSONResponse(body, status_code=status_of(exc), headers=headers_of(exc))


async def _domain_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, JobQueueError)
    return error_response(exc)


def headers_of(exc: JobQueueError) -> dict[str, str] | None:
    """The headers that go with a domain error's response: ``Retry-After`` on a 429 and a 503
    (RFC 9110 section 10.2.3), ``WWW-Authenticate`` on a 401 (RFC 6750 section 3)."""
    if isinstance(exc, NotAuthenticated):
        challenge = 'Bearer realm="jobqueue"'
        if exc.invalid_token:
            challenge += ', error="invalid_token"'
        return {"WWW-Authenticate": challenge}
    if isinstance(exc, TooManyWaiting):
        return {"Retry-After": str(exc.retry_after_seconds)}
    if status_of(exc) == 503:
        return {"Retry-After": "1"}
    return None


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    # The body itself is not an object (a field that takes an object or a string, such as the
    # lease API's ``worker``, reports the same type on its own ``loc``: listed as usual).
    if any(
        error.get("type") == "model_attributes_type" and tuple(error.get("loc", ())) == ("body",)
        for error in errors
    ):
        content_type = request.headers.get("content-type", "")
        # None given, or text/json: FastAPI did not parse the body as JSON.
        if not content_type or not declares_json(content_type):
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
    return JSONResponse(validation_body(errors), status_code=422)


MAX_LISTED_ERRORS = 20
"""How many schema violations a 422 lists; ``error_count`` says how many there were."""
MAX_MESSAGE_CHARS = 300
"""The longest ``msg`` of a listed error, in characters (a longer one is cut, ending in ``…``)."""
MAX_LOC_ITEMS = 10
"""The most items of a listed error's ``loc``; a deeper one keeps its first 9 and ``"…"``."""
MAX_LOC_PART_CHARS = 100
"""The longest string in a listed error's ``loc`` or ``ctx``, in characters (cut, with ``…``)."""


def validation_body(errors: Sequence[Any]) -> dict[str, Any]:
    """The body of a schema violation's 422: ``{"detail": [...]}`` as FastAPI makes it, and
    when errors were left out ``"error_count"`` (how many there were) and a ``"note"`` saying so.

    ``detail`` holds the first :data:`MAX_LISTED_ERRORS` errors, each as
    :func:`bounded_error` makes it, so the answer stays a few KB however many errors a body
    makes (a 10,000-job batch with a bad field in each) and however large the values in it.

    Args:
        errors: pydantic's errors (``RequestValidationError.errors()``).
    """
    listed = [bounded_error(error) for error in errors[:MAX_LISTED_ERRORS]]
    body: dict[str, Any] = {"detail": listed}
    if len(errors) > len(listed):
        body["error_count"] = len(errors)
        body["note"] = (
            f"only the first {len(listed)} of {len(errors)} errors are listed; the other "
            f"{len(errors) - len(listed)} were left out"
        )
    return body


# The strict models' type errors ("Input should be a valid integer") say what was expected;
# naming what came makes the fix obvious for "priority": true or "max_attempts": "3".
_TYPE_ERRORS = frozenset({"int_type", "float_type", "string_type", "dict_type", "list_type"})


def bounded_error(error: Any) -> dict[str, Any]:
    """A validation error as a 422 lists it: JSON-ready, without its ``input`` (which may be
    large or secret), its message naming the JSON type that was sent when the type was wrong,
    and every part bounded: ``msg`` to :data:`MAX_MESSAGE_CHARS` characters, ``loc`` to
    :data:`MAX_LOC_ITEMS` items and its strings (and ``ctx``'s) to
    :data:`MAX_LOC_PART_CHARS`; a ``ctx`` value that is not a string, number, boolean or
    null is sent as its text, cut the same way.

    Args:
        error: one of pydantic's error dicts (``type``, ``loc``, ``msg``, ``input``, ``ctx``).
    """
    msg = str(error.get("msg", ""))
    if error.get("type") in _TYPE_ERRORS and "input" in error:
        msg = f"{msg}, not {_json_kind(error['input'])}"
    bounded: dict[str, Any] = {
        "type": _cut(str(error.get("type", "")), MAX_LOC_PART_CHARS),
        "loc": _bounded_loc(error.get("loc", ())),
        "msg": _cut(msg, MAX_MESSAGE_CHARS),
    }
    ctx = error.get("ctx")
    if isinstance(ctx, Mapping):
        bounded["ctx"] = {
            _cut(str(key), MAX_LOC_PART_CHARS): _bounded_value(value)
            for key, value in list(ctx.items())[:MAX_LOC_ITEMS]
        }
    return bounded


def _bounded_loc(loc: Any) -> list[Any]:
    parts = [_bounded_value(part) for part in list(loc)[: MAX_LOC_ITEMS + 1]]
    if len(parts) > MAX_LOC_ITEMS:
        parts = [*parts[: MAX_LOC_ITEMS - 1], "…"]
    return parts


def _bounded_value(value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int) and -_JSON_INT_BOUND <= value <= _JSON_INT_BOUND:
        return value
    if isinstance(value, float) and math.isfinite(value):  # json.dumps refuses NaN here
        return value
    if isinstance(value, int):  # str() of one past 4,300 digits raises
        return "a very large integer"
    return _cut(str(value), MAX_LOC_PART_CHARS)


_JSON_INT_BOUND = 2**64


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


def _json_kind(value: Any) -> str:
    kinds: list[tuple[type | tuple[type, ...], str]] = [
        (bool, "a boolean"),
        (int, "an integer"),
        (float, "a number with a fraction"),
        (str, "a string"),
        ((list, tuple), "an array"),
        (dict, "an object"),
    ]
    if value is None:
        return "null"
    return next((name for kind, name in kinds if isinstance(value, kind)), "that")


# FastAPI's words when json.loads fails with something other than a syntax error: nesting past
# the recursion limit, or an integer longer than Python's int-parsing limit (4300 digits).
_FASTAPI_PARSE_ERROR = "There was an error parsing the body"


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 405:
        return method_not_allowed(request, exc)
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


def method_not_allowed(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """A 405 whose ``Allow`` lists every method the path answers, from all its routes (RFC
    9110 section 15.5.6), and whose detail names them; the router's own ``Allow`` (the first
    matching route's methods) stands only when no route answers the path (static files)."""
    allowed = allowed_methods(request.app, request.scope)
    allow = ", ".join(allowed) if allowed else (exc.headers or {}).get("Allow", "")
    method = request.method[:16]  # any token is a method: keep the answer bounded
    detail = f"{method} is not allowed here" + (f"; use {allow}" if allow else "")
    return JSONResponse(
        {"detail": detail}, status_code=405, headers={"Allow": allow} if allow else None
    )


DRIVER_ERROR_DETAIL = "the database could not complete the request; retry"
"""The whole body of a 503 for a driver error: the driver's own text may quote SQL, parameters
and server internals, so it goes to the log only."""

MAX_LOGGED_ERROR_CHARS = 2000
"""How much of a driver error's message a log event keeps, in characters: it may quote request
parameters (bounded per value by SQLAlchemy, not in number)."""

log = structlog.get_logger(__name__)


async def driver_error(request: Request, exc: Exception) -> JSONResponse:
    """A driver error that escaped the service (:data:`jobqueue.db.engine.DRIVER_ERRORS`): a
    JSON 503 with ``Retry-After: 1`` and :data:`DRIVER_ERROR_DETAIL`, and one
    ``database_error`` log event at error level with the error's type, its message (at most
    :data:`MAX_LOGGED_ERROR_CHARS`), the type of its cause, the traceback's frames (not
    ``exc_info``, whose last line would repeat the unbounded message) and the request id
    (bound by the request middleware). Retrying is the advice because what escapes
    here is mostly transient: a proxy that lost a prepared statement, a serialisation failure.
    """
    message = str(exc)
    if len(message) > MAX_LOGGED_ERROR_CHARS:
        message = f"{message[:MAX_LOGGED_ERROR_CHARS]}… ({len(message)} characters)"
    cause = exc.__cause__ or exc.__context__
    log.error(
        "database_error",
        error_type=f"{type(exc).__module__}.{type(exc).__qualname__}",
        error=message,
        cause_type=None
        if cause is None
        else f"{type(cause).__module__}.{type(cause).__qualname__}",
        request_id=structlog.contextvars.get_contextvars().get("request_id"),
        method=request.method,
        path=request.url.path[:200],
        traceback="".join(traceback.format_tb(exc.__traceback__)),
    )
    return JSONResponse(
        {"detail": DRIVER_ERROR_DETAIL}, status_code=503, headers={"Retry-After": "1"}
    )


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    for error_type in DRIVER_ERRORS:
        app.add_exception_handler(error_type, driver_error)
    app.add_exception_handler(JobQueueError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
