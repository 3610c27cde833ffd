"""The NOTIFY protocol: one encoder and one decoder for every message (standard library only).

One channel, :data:`CHANNEL`. A payload is ``<kind>[@<origin>]:<items>``, items comma-separated:

- ``q:default,emails``   jobs became runnable on these queues (``q:*``: on any queue)
- ``f:12,13``            these jobs reached a final status (wakes ``?wait_seconds`` readers)
- ``c:12``               cancellation was requested for these running jobs
- ``p:3f9a0c1d5e7b2a46`` a listener's self-test ping (see ``notify/listener.py``): only the
  listener that sent the token acts on it

A decoder meets kinds it does not know (a newer process's, another program's) and must ignore
them: :func:`decode` returns None for them, which is how processes built before ``p`` existed
skip pings.

``@<origin>`` names the app that sent it (:func:`new_origin`, one per app). An app wakes its
own claimer directly after a local enqueue, so its listener skips the echo of its own ``q``
message: one wake-up per enqueue, not two. A list too long for one payload (PostgreSQL caps it
at 8000 bytes) becomes ``*``: "any of them: check".

Statements that notify from SQL (the finish statement names the jobs it wrote, which only the
database knows) build the payload with :func:`sql_payload`, so the format lives here alone.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

CHANNEL: Final = "jobqueue"
"""The LISTEN/NOTIFY channel of every jobqueue process on one database."""

MAX_PAYLOAD_BYTES: Final = 7900
"""PostgreSQL refuses a payload of 8000 bytes or more; stay clear of it."""

ALL: Final = "*"
"""The item that means "any": every queue, every job."""

QUEUES: Final = "q"
FINISHED: Final = "f"
CANCEL: Final = "c"
PING: Final = "p"


def new_origin() -> str:
    """A new origin tag for one app: 8 hex digits."""
    return secrets.token_hex(4)


def new_ping_token() -> str:
    """A new ping token: 16 hex digits (64 random bits, so that no two pings of any process on
    the channel share one)."""
    return secrets.token_hex(8)


@dataclass(frozen=True, slots=True)
class QueuesRunnable:
    """Jobs became runnable on ``queues`` (``None``: on any queue)."""

    queues: frozenset[str] | None
    origin: str | None = None

    def covers(self, served: Iterable[str]) -> bool:
        """True when one of ``served`` may have new work."""
        return self.queues is None or not self.queues.isdisjoint(served)


@dataclass(frozen=True, slots=True)
class JobsFinished:
    """Jobs reached a final status (``None``: any job may have: check every waiter)."""

    job_ids: frozenset[int] | None
    origin: str | None = None


@dataclass(frozen=True, slots=True)
class CancelRequested:
    """Cancellation was requested for running jobs (``None``: check every held job)."""

    job_ids: frozenset[int] | None
    origin: str | None = None


@dataclass(frozen=True, slots=True)
class Ping:
    """A listener's self-test: it sent ``token`` and waits for it to come back on its LISTEN
    connection. Every other subscriber, and every other process's listener, ignores it."""

    token: str


Event = QueuesRunnable | JobsFinished | CancelRequested | Ping
"""Every message the channel carries, decoded."""


def _encode(kind: str, items: Iterable[object], origin: str | None) -> str:
    head = kind if origin is None else f"{kind}@{origin}"
    names = sorted({str(item) for item in items})
    payload = f"{head}:{','.join(names)}"
    if len(payload.encode()) > MAX_PAYLOAD_BYTES:
        payload = f"{head}:{ALL}"
    return payload


def encode(event: Event) -> str:
    """The payload text of ``event``; at most :data:`MAX_PAYLOAD_BYTES` bytes.

    Example: ``QueuesRunnable(frozenset({"default"}), "ab12cd34")`` → ``"q@ab12cd34:default"``.
    """
    if isinstance(event, QueuesRunnable):
        return _encode(QUEUES, event.queues if event.queues is not None else [ALL], event.origin)
    if isinstance(event, Ping):
        return f"{PING}:{event.token}"
    kind = FINISHED if isinstance(event, JobsFinished) else CANCEL
    return _encode(kind, event.job_ids if event.job_ids is not None else [ALL], event.origin)


def queues_runnable(queues: Iterable[str], origin: str | None = None) -> str:
    """The payload saying jobs became runnable on ``queues``, tagged with ``origin`` (the
    sender's own listener then skips it)."""
    return encode(QueuesRunnable(frozenset(queues), origin))


def _ids(items: list[str]) -> frozenset[int] | None:
    if ALL in items:
        return None
    return frozenset(int(item) for item in items if item.isascii() and item.isdigit())


def decode(payload: str) -> Event | None:
    """The event a payload carries, or None for a payload of another kind or another program.

    Never raises: the channel may carry anything a database user sends.
    """
    head, sep, body = payload.partition(":")
    if not sep:
        return None
    kind, _, origin_text = head.partition("@")
    origin = origin_text or None
    items = [item for item in body.split(",") if item]
    if kind == QUEUES:
        return QueuesRunnable(None if ALL in items else frozenset(items), origin)
    if kind == FINISHED:
        return JobsFinished(_ids(items), origin)
    if kind == CANCEL:
        return CancelRequested(_ids(items), origin)
    if kind == PING:
        return Ping(body)
    return None


def sql_payload(kind: str, items_sql: str) -> str:
    """A SQL expression for the payload ``<kind>:<items>`` whose items an aggregate computes.

    Args:
        kind: :data:`QUEUES`, :data:`FINISHED` or :data:`CANCEL`.
        items_sql: a SQL text expression of the comma-separated items, e.g.
            ``string_agg(f.id::text, ',')``; NULL makes the whole payload NULL.

    Returns:
        SQL that yields the payload, with ``*`` instead of items too long for one payload.
    """
    limit = MAX_PAYLOAD_BYTES - len(kind) - 1
    return (
        f"'{kind}:' || CASE WHEN octet_length({items_sql}) > {limit} THEN '{ALL}' "
        f"ELSE {items_sql} END"
    )
