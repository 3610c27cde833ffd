"""What :class:`JobQueue` and :class:`AsyncJobQueue` share: the options of their httpx
client, the arguments every enqueue and schedule call turns into a body, and how a wait
reads a job."""

from __future__ import annotations

import math
import os
import re
import socket
from collections.abc import Mapping, Sequence
from datetime import datetime
from importlib import metadata
from typing import Any

from jobqueue.client._errors import JobCancelled, JobFailed
from jobqueue.client._models import Job, JobSpec

DEFAULT_URL = "http://127.0.0.1:8000"
"""Where ``jobqueue serve`` listens by default."""


def _user_agent() -> str:
    try:
        version = metadata.version("jobqueue")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return f"jobqueue-client/{version}"


USER_AGENT = _user_agent()

_NOT_IN_WORKER_NAMES = re.compile(r"[^A-Za-z0-9_.:@-]+")


def default_worker_name() -> str:
    """This process's name for the lease protocol when none is given: ``<host>:<pid>``, in
    the characters a worker name may hold (``A-Za-z0-9_.:@-``, at most 100)."""
    host = _NOT_IN_WORKER_NAMES.sub("-", socket.gethostname()).strip("-") or "host"
    pid = str(os.getpid())
    return f"{host[: 99 - len(pid)]}:{pid}"


def client_options(url: str, key: str | None, timeout: float, retries: int) -> dict[str, Any]:
    """The keyword arguments of the ``httpx.Client`` (or ``AsyncClient``) of a client.

    Raises:
        ValueError: ``timeout`` is not a positive finite number, or ``retries`` is negative.
    """
    if not (math.isfinite(timeout) and timeout > 0):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    if retries < 0:
        raise ValueError(f"retries must be 0 or more, got {retries!r}")
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return {"base_url": url.rstrip("/"), "headers": headers, "timeout": timeout}


def job_spec(
    task: str,
    payload: Mapping[str, Any] | None,
    *,
    queue: str | None,
    priority: int | None,
    delay_seconds: float | None,
    run_at: datetime | str | None,
    max_attempts: int | None,
    timeout_seconds: float | None,
    idempotency_key: str | None,
    description: str | None,
) -> JobSpec:
    """The :class:`JobSpec` of an ``enqueue`` call's arguments."""
    return JobSpec(
        task=task,
        payload=payload,
        queue=queue,
        priority=priority,
        delay_seconds=delay_seconds,
        run_at=run_at,
        max_attempts=max_attempts,
        timeout_seconds=timeout_seconds,
        idempotency_key=idempotency_key,
        description=description,
    )


def schedule_fields(
    cron: str | None,
    task: str | None,
    payload: Mapping[str, Any] | None,
    queue: str | None,
    priority: int | None,
    timezone: str | None,
) -> dict[str, Any]:
    """A schedule's fields as the API names them (None: not sent)."""
    return {
        "cron": cron,
        "task": task,
        "payload": None if payload is None else dict(payload),
        "queue": queue,
        "priority": priority,
        "timezone": timezone,
    }


def final_result(job: Job) -> Any:
    """The result of a job that ended ``done``.

    Raises:
        JobFailed: it ended ``failed``.
        JobCancelled: it ended ``cancelled``.
    """
    if job.status == "failed":
        raise JobFailed(job)
    if job.status == "cancelled":
        raise JobCancelled(job)
    return job.result


def token_list(tokens: str | Sequence[str]) -> list[str]:
    """One token or several, as a list (a lone ``str`` is one token, not its characters)."""
    return [tokens] if isinstance(tokens, str) else list(tokens)


def queue_list(queues: str | Sequence[str]) -> list[str]:
    """One queue name or several, as a list."""
    return [queues] if isinstance(queues, str) else list(queues)
