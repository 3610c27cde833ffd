"""The audit trail: one ``audit`` log event per admin action and per refused request (403).

An admin action (cancel, retry, a queue's pause and resume, a schedule's changes) logs who
asked (the key's name, ``anonymous`` without keys, or the dashboard session's key name; ``via``
says which), the action, the job id, queue or schedule (``target``) and the outcome:

- ``ok``: done; ``status`` is the job's status afterwards (``cancelled``, or ``in_progress``
  for a cancel sent to a running job; ``todo`` after a retry);
- ``refused``: the service said no (``error``: ``JobNotFound``, ``JobStateConflict``, ...);
- ``interrupted``: the request was cancelled or failed unexpectedly before an answer.

A request refused with 403 (a role too low, a cross-site or CSRF-less request) logs
``outcome="denied"`` with the method and route template as the action and the reason. Every
field is bounded: names come from the configured keys, actions and routes from the code, and
the reason and error messages are cut to :data:`MAX_DETAIL_CHARS`.

Who asked is read from ``request.state.principal``, which the access check (``api/auth.py``)
sets before it decides.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import structlog
from fastapi import Request

from jobqueue.api.middleware import route_template
from jobqueue.errors import JobQueueError, PermissionDenied
from jobqueue.jobs import Job

log = structlog.get_logger("jobqueue.audit")

MAX_DETAIL_CHARS = 300
"""Longest reason or error message an audit event carries, in characters."""


def who(request: Request) -> dict[str, str]:
    """``{"principal": name, "via": how}`` of the request's caller; ``unknown`` for both
    when the access check has not run (or failed before it knew who)."""
    principal: Any = getattr(request.state, "principal", None)
    if principal is None:
        return {"principal": "unknown", "via": "unknown"}
    return {"principal": str(principal.name), "via": str(principal.via)}


@dataclass
class AuditRecord:
    """What the audited block reports: the job after the action, when it succeeded."""

    job: Job | None = None


@contextlib.contextmanager
def audited(
    request: Request,
    action: str,
    job_id: int | None = None,
    *,
    queue: str | None = None,
    target: str | None = None,
) -> Iterator[AuditRecord]:
    """Log one ``audit`` event for the admin action run in the ``with`` block.

    Set ``record.job`` to the job the action returned. Errors propagate unchanged (a
    cancellation included): they are logged, never swallowed.

    Args:
        request: the request (for who asked).
        action: e.g. ``"cancel"``, ``"retry"``, ``"pause"``.
        job_id: the job acted on, if any.
        queue: the queue acted on, if any (a checked queue name: bounded).
        target: another named thing acted on (a schedule's checked name: bounded).
    """
    record = AuditRecord()
    named: dict[str, object] = {
        key: value
        for key, value in (("job_id", job_id), ("queue", queue), ("target", target))
        if value is not None
    }
    fields = {"action": action, **named, **who(request)}
    try:
        yield record
    except JobQueueError as exc:
        log.info(
            "audit",
            outcome="refused",
            error=type(exc).__name__,
            detail=str(exc)[:MAX_DETAIL_CHARS],
            **fields,
        )
        raise
    except BaseException:
        log.warning("audit", outcome="interrupted", **fields)
        raise
    status = None if record.job is None else str(record.job.status)
    log.info("audit", outcome="ok", status=status, **fields)


def denied(request: Request, exc: PermissionDenied) -> None:
    """Log a request refused with 403: who (the key's name, never the key), the method and
    route template, and why."""
    method = request.method if request.method.isalpha() else "other"
    log.warning(
        "audit",
        outcome="denied",
        action=f"{method[:10]} {route_template(request.scope)}",
        detail=str(exc)[:MAX_DETAIL_CHARS],
        principal=exc.key_name or ("anonymous" if exc.via == "open" else "unknown"),
        via=exc.via or "unknown",
    )
