"""A scripted service for the client's unit tests: an ``httpx.MockTransport`` that answers
requests in turn from a script and records them, and the clients built on it."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

from jobqueue.client import AsyncJobQueue, JobQueue

Answer = httpx.Response | Callable[[httpx.Request], httpx.Response]

URL = "http://jq.test"

JOB: dict[str, Any] = {
    "id": 7,
    "task": "echo",
    "queue": "default",
    "status": "todo",
    "payload": {"n": 1},
    "result": None,
    "error": None,
    "attempts": 0,
    "max_attempts": 3,
    "priority": 0,
    "description": None,
    "created_at": "2026-11-29T12:00:00.000000Z",
    "run_at": "2026-11-29T12:00:00.000000Z",
    "started_at": None,
    "finished_at": None,
    "timeout_seconds": 300.0,
    "worker_id": None,
    "lease_expires_at": None,
    "rescues": 0,
    "idempotency_key": None,
    "cancel_requested_at": None,
}


def job(**fields: Any) -> dict[str, Any]:
    """A job object as the API answers it, with ``fields`` changed."""
    return {**JOB, **fields}


def answer(status: int = 200, body: Any = None, headers: dict[str, str] | None = None) -> Answer:
    """A JSON answer (``{}`` when ``body`` is None)."""
    return httpx.Response(status, json={} if body is None else body, headers=headers)


def fails(error: type[httpx.TransportError], message: str = "boom") -> Answer:
    """No answer: httpx raises ``error`` for the request."""

    def handler(request: httpx.Request) -> httpx.Response:
        raise error(message, request=request)

    return handler


class Script:
    """Answers each request with the next answer of the script; the last one repeats.

    Attributes:
        requests: every request received, in order.
    """

    def __init__(self, *answers: Answer) -> None:
        assert answers, "a script needs an answer"
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        next_answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(next_answer, httpx.Response):
            return httpx.Response(
                next_answer.status_code,
                headers=next_answer.headers,
                content=next_answer.content,
                request=request,
            )
        return next_answer(request)

    @property
    def count(self) -> int:
        """How many requests were received."""
        return len(self.requests)

    def body(self, index: int = -1) -> Any:
        """The JSON body of request ``index`` (None when it had none)."""
        content = self.requests[index].content
        return json.loads(content) if content else None

    def client(self, **options: Any) -> JobQueue:
        """A :class:`JobQueue` of this script."""
        return JobQueue(URL, transport=httpx.MockTransport(self), **options)

    def async_client(self, **options: Any) -> AsyncJobQueue:
        """An :class:`AsyncJobQueue` of this script."""
        return AsyncJobQueue(URL, transport=httpx.MockTransport(self), **options)
