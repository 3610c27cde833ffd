"""The errors jobqueue raises, and the signals a task may raise (standard library only).

The tree::

    JobQueueError
    ├── JobNotFound            no job with that id                       (API: 404)
    ├── InvalidJobRequest      a request that cannot be stored as given  (API: 422)
    │   ├── UnknownTask        the task name is not registered           (API: 422)
    │   ├── UnknownQueue       the queue is not one the deployment runs  (API: 422)
    │   └── PayloadTooLarge    payload over JOBQUEUE_MAX_PAYLOAD_BYTES    (API: 413)
    ├── InvalidCursor          a pagination cursor we did not issue      (API: 400)
    ├── BodyNotUtf8            a request body that is not UTF-8 JSON     (API: 400)
    ├── DuplicateKey           a JSON object of the body names a key twice (API: 400)
    ├── TooManyWaiting         the process's long-poll slots are taken   (API: 429)
    ├── JobStateConflict       the job's status does not allow the action (API: 409)
    ├── IdempotencyConflict    a key reused for a different request      (API: 409)
    ├── DatabaseUnavailable    PostgreSQL cannot be reached              (API: 503)
    ├── OutcomeRejected        the database refused an outcome as data   (worker only)
    ├── NotAuthenticated       no key or session, or one that is not valid (API: 401)
    ├── PermissionDenied       a key without the role needed, or a failed CSRF check (API: 403)
    ├── MisdirectedRequest     a Host this service does not answer for    (API: 421)
    ├── MalformedHost          no Host, two Host lines, or a Host that is not host[:port] (400)
    └── ConfigurationError     settings that cannot work (start-up stops)

    TaskError                  base of the signals a task raises to steer its job
    ├── Discard                fail the job now, whatever attempts remain
    └── RetryLater             retry after the given delay (if attempts remain)

Only ``api/errors.py`` maps these to HTTP status codes.
"""

from __future__ import annotations

from collections.abc import Iterable


class JobQueueError(Exception):
    """Base of every error jobqueue raises on purpose. ``str(err)`` is a user-facing message."""


class JobNotFound(JobQueueError):
    """No job has the given id."""

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        super().__init__(f"job {job_id} does not exist")


class QueueNotFound(JobQueueError):
    """No queue of that name is known: none is configured, served by a live process, or was
    paused before."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        shown = ", ".join(known[:20]) + (", ..." if len(known) > 20 else "")
        super().__init__(f"queue {name[:100]!r} is not known; known queues: {shown or 'none'}")


class ScheduleNotFound(JobQueueError):
    """No schedule has the given name."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"schedule {name[:100]!r} does not exist")


class ScheduleExists(JobQueueError):
    """A schedule of that name exists already (``POST /schedules`` creates, ``PATCH`` changes)."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(
            f"schedule {name[:100]!r} exists already: change it with PATCH /schedules/{name[:100]}"
        )


class InvalidJobRequest(JobQueueError):
    """A job request that cannot be stored as given; the message says what to fix."""


class UnknownTask(InvalidJobRequest):
    """The task name is not in the registry; the message lists the known names."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        self.known = sorted(known)
        super().__init__(f"unknown task {name[:200]!r}; known tasks: {_listing(self.known)}")


MAX_NAMES_LISTED = 20
"""How many known names an error message lists (the rest are counted, not listed)."""


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_NAMES_LISTED])
    hidden = len(names) - MAX_NAMES_LISTED
    return f"{shown} and {hidden} more" if hidden > 0 else shown


class UnknownQueue(InvalidJobRequest):
    """The queue is not one this deployment knows (``JOBQUEUE_QUEUES`` and
    ``JOBQUEUE_REMOTE_QUEUES``); the message lists the known names (the first
    :data:`MAX_NAMES_LISTED`)."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        self.known = sorted(known)
        super().__init__(
            f"unknown queue {name[:100]!r}; known queues: {_listing(self.known)} "
            "(JOBQUEUE_QUEUES, JOBQUEUE_REMOTE_QUEUES)"
        )


class PayloadTooLarge(InvalidJobRequest):
    """The payload's JSON encoding is larger than the configured limit (bytes)."""

    def __init__(self, size_bytes: int, limit_bytes: int) -> None:
        self.size_bytes = size_bytes
        self.limit_bytes = limit_bytes
        super().__init__(
            f"payload is {size_bytes} bytes of JSON; the limit is {limit_bytes} bytes "
            "(JOBQUEUE_MAX_PAYLOAD_BYTES): store large data elsewhere and pass a reference"
        )


class InvalidCursor(JobQueueError):
    """A pagination cursor that this service did not issue."""

    def __init__(self) -> None:
        super().__init__("cursor is not valid: pass the next_cursor value of a previous page")


class BodyNotUtf8(JobQueueError):
    """A request body that is not JSON encoded as UTF-8: a byte order mark, UTF-16 or UTF-32,
    or bytes that are not valid UTF-8 (RFC 8259, section 8.1: JSON exchanged between systems
    MUST be UTF-8, without a byte order mark). The message says what was found."""


class ContentEncodingNotSupported(JobQueueError):
    """A request body sent with a ``Content-Encoding`` other than ``identity`` (gzip, br, ...):
    the service reads bodies as sent, so an encoded body would be read as garbage and a body
    that claims an encoding it does not have would be taken on trust (RFC 9110, section
    15.5.16: 415 for a content coding the server does not support)."""


class DuplicateKey(JobQueueError):
    """A JSON object in a request body names the same key twice (``{"task": "a", "task":
    "b"}``): RFC 8259, section 4, says the names within an object SHOULD be unique and leaves
    what a parser does with a repeated one to it; this service refuses it rather than pick one.
    The message names the key and where the object is."""


class TooManyWaiting(JobQueueError):
    """As many requests as the process allows already wait for jobs to finish (long-polls).

    Args:
        limit: the cap (``JOBQUEUE_MAX_LONG_POLLS``).
        retry_after_seconds: when to try again, in whole seconds.
    """

    def __init__(self, limit: int, retry_after_seconds: int = 1) -> None:
        self.limit = limit
        self.retry_after_seconds = retry_after_seconds
        super().__init__(
            f"{limit} requests already wait for jobs on this process (JOBQUEUE_MAX_LONG_POLLS): "
            f"retry after {retry_after_seconds} s, or read the job without wait_seconds"
        )


class JobStateConflict(JobQueueError):
    """The action is not allowed from the job's current status (e.g. cancelling a done job)."""

    def __init__(self, job_id: int, status: str, action: str, allowed: Iterable[str]) -> None:
        self.job_id = job_id
        self.status = status
        super().__init__(
            f"job {job_id} is {status}; only {' or '.join(allowed)} jobs can be {action}"
        )


class LeaseNotFound(JobQueueError):
    """A lease token that is malformed, or was not issued to the key presenting it (a worker
    key never sees another key's leases)."""


class LeaseLost(JobQueueError):
    """The lease a token names is no longer held: it expired and the job was rescued (perhaps
    leased again), the job was cancelled, retried or deleted. Nothing was written.

    Attributes:
        job_id, attempt: the attempt the token names.
        status: the job's status now; None when not known (or the job is gone).
    """

    code = "lease_lost"

    def __init__(self, job_id: int, attempt: int, status: str | None) -> None:
        self.job_id = job_id
        self.attempt = attempt
        self.status = status
        now = "" if status is None else f" (the job is {status} now)"
        super().__init__(
            f"the lease of job {job_id} (attempt {attempt}) is no longer held{now}: "
            "drop this attempt's outcome"
        )


class IdempotencyConflict(JobQueueError):
    """An idempotency key already names a job created from a different request."""

    def __init__(self, key: str, job_id: int, differs: str) -> None:
        self.key = key
        self.job_id = job_id
        super().__init__(
            f"idempotency key {key!r} was used for job {job_id} with a different {differs}: "
            "use a new key for a new job, or resend the original request"
        )


class DatabaseUnavailable(JobQueueError):
    """PostgreSQL could not be reached or answered with a connection error."""


class OutcomeRejected(JobQueueError):
    """The database refused a batch of attempt outcomes as data (a value out of its range, text
    it cannot hold): nothing of the batch was written. The worker then writes the outcomes one
    by one, so that one bad outcome cannot hold back the others."""


class NotAuthenticated(JobQueueError):
    """The request carries no credentials, or credentials that are not valid.

    Args:
        message: what to send, e.g. "send 'Authorization: Bearer <key>'".
        invalid_token: True when a bearer key was sent but is not valid (RFC 6750's
            ``error="invalid_token"``).
        reason: why, one of a fixed set (a log field and a metric label, never client text):
            ``missing`` (no key, no session), ``malformed`` (an Authorization header that is not
            ``Bearer <key>``), ``invalid_key``, ``invalid_session``.
    """

    def __init__(
        self, message: str, *, invalid_token: bool = False, reason: str = "missing"
    ) -> None:
        self.invalid_token = invalid_token
        self.reason = reason
        super().__init__(message)


class PermissionDenied(JobQueueError):
    """Valid credentials that may not do this: a role too low, or a cross-site or CSRF-less
    request made with a dashboard session.

    Args:
        message: what is missing, e.g. "this needs the admin role".
        reason: ``role``, ``cross_site`` or ``csrf`` (a log field and a metric label).
        key_name: the name of the key (or of the session's key) that was refused, when known;
            a name, never the key.
        via: how the caller presented itself: ``bearer``, ``session`` or ``open``, when known.
    """

    def __init__(
        self,
        message: str,
        *,
        reason: str = "role",
        key_name: str | None = None,
        via: str | None = None,
    ) -> None:
        self.reason = reason
        self.key_name = key_name
        self.via = via
        super().__init__(message)


class MisdirectedRequest(JobQueueError):
    """The request's ``Host`` is not one this service answers for (without API keys it answers
    for loopback names only, so that a DNS-rebinding web page cannot reach it)."""


class MalformedHost(JobQueueError):
    """An HTTP/1.1 request without a ``Host`` field, with more than one ``Host`` field line, or
    with a ``Host`` that is not a host and an optional port (RFC 9112 section 3.2: the server
    "MUST respond with a 400 (Bad Request)" to each)."""


class ConfigurationError(JobQueueError):
    """Settings that cannot work; start-up stops with this message."""


class TaskError(Exception):
    """Base of the signals a task raises to steer its job (not an error of jobqueue itself)."""


class Discard(TaskError):
    """Raise from a task to fail its job at once, without the retries it has left."""


class RetryLater(TaskError):
    """Raise from a task to retry its job after ``delay_seconds`` instead of the backoff.

    The attempt still counts: with no attempts left the job ends ``failed``. Use it to honour a
    server's ``Retry-After`` (RFC 9110, section 10.2.3).

    Args:
        delay_seconds: seconds from now before the next attempt may run; a negative delay is 0,
            one beyond ten years (infinity included) is ten years.
        message: why, stored as the attempt's error.

    Raises:
        ValueError: ``delay_seconds`` is NaN (a bug in the task: its attempt fails with this
            error and the job's backoff applies, rather than a retry at an arbitrary time).
    """

    def __init__(self, delay_seconds: float, message: str = "retry requested") -> None:
        delay = float(delay_seconds)
        if delay != delay:
            raise ValueError("RetryLater needs a number of seconds; got NaN")
        self.delay_seconds = max(delay, 0.0)
        super().__init__(message)
