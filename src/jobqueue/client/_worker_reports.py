"""A remote worker's reports: each attempt's outcome completes or fails its job, group-committed
(what finishes while one ``POST /leases/complete`` or ``/fail`` is on its way goes in the
next batch), retried with backoff while the service is down.

Reports ride on the next lease call when one is about to go (``POST /leases`` with ``complete``
and ``fail``: one request per batch instead of two): the lease loop takes them
(:meth:`Reporter.take`) just before it calls, and what it does not take, because no lease call
is coming (no free slot, a long-poll in flight, a pause), the reports loop sends itself."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from jobqueue.client._errors import ApiError
from jobqueue.client._worker_outcomes import Outcome, failure_fields
from jobqueue.client._worker_protocols import (
    SERVICE_DOWN,
    LeaseBatchLike,
    LeaseClient,
    ReportLike,
)
from jobqueue.client._worker_state import (
    LEASE_LOST,
    LOST,
    MAX_BATCH_CHARACTERS,
    MAX_BATCH_ITEMS,
    Held,
    WorkerConfig,
    describe,
    jittered,
    log,
    log_failure,
    log_job,
)


@dataclass(eq=False)
class _Outgoing:
    """A report waiting for the reporter: a completion (``fields`` None, with ``result``) or a
    failure (the ``fail`` body); ``size`` its characters; ``answer`` gets its answer."""

    held: Held
    fields: dict[str, Any] | None
    result: Any
    size: int
    answer: asyncio.Future[ReportLike | None]
    carry: bool = True
    """False once a lease call carrying it was refused: the reports loop sends it."""


@dataclass(eq=False)
class Carried:
    """The reports a lease call carries: one batch of completions, one of failures."""

    completes: list[_Outgoing]
    fails: list[_Outgoing]

    def complete_items(self) -> list[tuple[str, Any]]:
        """The ``complete`` items of the lease call."""
        return _completion_items(self.completes)

    def fail_items(self) -> list[dict[str, Any]]:
        """The ``fail`` items of the lease call."""
        return _failure_items(self.fails)


class Reporter:
    """Sends the reports of a worker's attempts: :meth:`report` queues one and waits for its
    answer; :meth:`run` (the reports loop) sends them in batches, or the lease loop carries them
    (:meth:`take`, :meth:`carried`, :meth:`not_carried`)."""

    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        self._outbox: list[_Outgoing] = []
        self._outbox_ready = asyncio.Event()

    def new_events(self) -> None:
        """Make the event again (each run: an event belongs to the loop that first waits on
        it)."""
        self._outbox_ready = asyncio.Event()

    async def report(self, held: Held, outcome: Outcome) -> None:
        """Complete or fail the job (:meth:`_send`); a result the service refuses (e.g. 422:
        over ``JOBQUEUE_MAX_RESULT_BYTES``) fails the attempt instead."""
        error = outcome.error
        if error is None:
            try:
                report = await self._send(held, None, outcome.result, outcome.size)
            except ApiError as exc:
                error = exc
            else:
                if report is not None:
                    self._log_report(held, report)
                return
        fields = failure_fields(error)
        size = len(fields["message"]) + len(fields.get("traceback") or "")
        try:
            report = await self._send(held, fields, None, size)
        except ApiError as exc:
            log_failure("report_refused", exc, job_id=held.context.job_id)
            return
        if report is not None:
            self._log_report(held, report, fields)

    async def _send(
        self, held: Held, fields: dict[str, Any] | None, result: Any, size: int
    ) -> ReportLike | None:
        """Queue one report for the reporter (:meth:`run`) and wait for its answer:
        None when the lease was lost or the report given up (see :meth:`_deliver`).

        Raises:
            ApiError: the service refused this report (nothing was written).
        """
        answer: asyncio.Future[ReportLike | None] = asyncio.get_running_loop().create_future()
        self._outbox.append(_Outgoing(held, fields, result, size, answer))
        self._outbox_ready.set()
        return await answer

    async def run(self, client: LeaseClient) -> None:
        """Group-commit reports: everything queued while the last batch was on its way goes in
        the next one (:data:`MAX_BATCH_ITEMS` and about :data:`MAX_BATCH_CHARACTERS` at most
        per request), completions and failures side by side."""
        while True:
            await self._outbox_ready.wait()
            self._outbox_ready.clear()
            # One turn of the loop first: a lease call about to go (a slot freed by the same
            # attempts) takes these reports with it.
            await asyncio.sleep(0)
            waiting = [item for item in self._outbox if not item.answer.done()]
            self._outbox = []
            batches = [
                *_batches([item for item in waiting if item.fields is None]),
                *_batches([item for item in waiting if item.fields is not None]),
            ]
            await asyncio.gather(*(self._deliver(client, batch) for batch in batches))

    def take(self) -> Carried | None:
        """The waiting reports for a lease call to carry (a batch of each kind at most), taken
        out of the outbox; None when none waits."""
        waiting = [item for item in self._outbox if not item.answer.done()]
        carriable = [item for item in waiting if item.carry]
        if not carriable:
            return None
        completes = _batches([item for item in carriable if item.fields is None])
        fails = _batches([item for item in carriable if item.fields is not None])
        carried = Carried(completes[0] if completes else [], fails[0] if fails else [])
        taken = {id(item) for item in (*carried.completes, *carried.fails)}
        self._outbox = [item for item in waiting if id(item) not in taken]
        if self._outbox:
            self._outbox_ready.set()
        return carried

    def carried(self, carried: Carried, batch: LeaseBatchLike) -> None:
        """The lease call that carried ``carried`` was answered: hand each report its answer
        (reports the answer does not cover go back to the reports loop)."""
        unanswered: list[_Outgoing] = []
        for items, reports in ((carried.completes, batch.completed), (carried.fails, batch.failed)):
            if items and len(reports) == len(items):
                self._answer(items, reports)
            else:
                unanswered.extend(items)
        if unanswered:
            self.not_carried(Carried(unanswered, []))

    def not_carried(self, carried: Carried, carry_again: bool = True) -> None:
        """The lease call failed: its reports go back to the reports loop, which sends them on
        its own (a report written before the failure answers ``repeated`` then); with
        ``carry_again`` False (the call was refused for them) no lease call carries them
        again."""
        items = [*carried.completes, *carried.fails]
        for item in items:
            item.carry = item.carry and carry_again
        self._outbox[:0] = items
        self._outbox_ready.set()

    async def _deliver(self, client: LeaseClient, items: list[_Outgoing]) -> None:
        """Send one batch of reports of one kind and hand each its answer. While the service is
        down: tried again with backoff, each report until the next try would come after its
        lease's end (the job will be rescued: given up, None) or its lease is lost. An item
        whose lease is lost: logged, None. A batch refused (422: nothing was written): each
        report sent alone, so that only the one at fault gets the error."""
        delay = self.config.backoff_min_seconds
        while items:
            try:
                reports = await self._post(client, items)
            except SERVICE_DOWN as exc:
                pause = jittered(delay)
                items = [item for item in items if self._still_worth(item, exc, pause)]
                if items:
                    log_failure("report_failed", exc, retry_in=pause, reports=len(items))
                    await asyncio.sleep(pause)
                    delay = min(delay * 2, self.config.backoff_max_seconds)
                continue
            except ApiError as exc:
                if len(items) == 1:
                    _settle_answer(items[0].answer, error=exc)
                    return
                for item in items:
                    await self._deliver(client, [item])
                return
            except Exception as exc:  # a bug, ours or the client's: each waiting job hears it
                for item in items:
                    _settle_answer(item.answer, error=exc)
                return
            self._answer(items, reports)
            return

    async def _post(self, client: LeaseClient, items: list[_Outgoing]) -> Sequence[ReportLike]:
        """One ``POST /leases/complete`` or ``/leases/fail`` for ``items`` (all of one kind)."""
        if items[0].fields is None:
            return await client.complete_many(_completion_items(items))
        return await client.fail_many(_failure_items(items))

    def _still_worth(self, item: _Outgoing, exc: BaseException, pause: float) -> bool:
        """Whether to try ``item`` again after ``pause`` seconds; if not, it is given up."""
        held = item.held
        if held.stop_reason != LOST and asyncio.get_running_loop().time() + pause < held.expires:
            return not item.answer.done()
        log_job("report_given_up", held, error=describe(exc))
        _settle_answer(item.answer)
        return False

    def _answer(self, items: list[_Outgoing], reports: Sequence[ReportLike]) -> None:
        """Hand each item its item of the batch answer (by token; in order without one)."""
        by_token = {report.token: report for report in reports if report.token is not None}
        for item, in_order in zip(items, reports, strict=False):
            report = by_token.get(item.held.lease.token, in_order)
            if report.status == LEASE_LOST:
                log_job("lease_lost", item.held, detail="the report changed nothing")
                _settle_answer(item.answer)
            else:
                _settle_answer(item.answer, report)

    def _log_report(
        self, held: Held, report: ReportLike, fields: dict[str, Any] | None = None
    ) -> None:
        """``job_reported job_id=… queue=… task=… attempt=… status=… repeated=…
        duration_ms=…`` (``error_type=…`` for a failure), at INFO: the hot path's one line."""
        if not log.isEnabledFor(logging.INFO):
            return
        context = held.context
        duration_ms = (asyncio.get_running_loop().time() - held.started) * 1000
        log.info(
            "job_reported job_id=%d queue=%s task=%s attempt=%d status=%s repeated=%s "
            "duration_ms=%.1f%s",
            context.job_id,
            context.queue,
            context.task,
            context.attempt,
            report.status,
            report.repeated,
            duration_ms,
            "" if fields is None else f" error_type={fields['error_type']}",
        )


def _completion_items(items: list[_Outgoing]) -> list[tuple[str, Any]]:
    """``(token, result)`` of completions, as ``complete_many`` and a lease call take them."""
    return [(i.held.lease.token, i.result) for i in items]


def _failure_items(items: list[_Outgoing]) -> list[dict[str, Any]]:
    """The bodies of failures, as ``fail_many`` and a lease call take them."""
    return [{"token": i.held.lease.token, **(i.fields or {})} for i in items]


def _batches(items: list[_Outgoing]) -> list[list[_Outgoing]]:
    """``items`` in batches of at most :data:`MAX_BATCH_ITEMS` and, but for a batch of one,
    :data:`MAX_BATCH_CHARACTERS`."""
    batches: list[list[_Outgoing]] = []
    batch: list[_Outgoing] = []
    size = 0
    for item in items:
        if batch and (len(batch) >= MAX_BATCH_ITEMS or size + item.size > MAX_BATCH_CHARACTERS):
            batches.append(batch)
            batch, size = [], 0
        batch.append(item)
        size += item.size
    if batch:
        batches.append(batch)
    return batches


def _settle_answer(
    answer: asyncio.Future[ReportLike | None],
    report: ReportLike | None = None,
    *,
    error: BaseException | None = None,
) -> None:
    if answer.done():
        return
    if error is not None:
        answer.set_exception(error)
    else:
        answer.set_result(report)
