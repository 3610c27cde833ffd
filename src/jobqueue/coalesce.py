"""Group commit for concurrent requests: many callers, one statement.

Callers ``submit`` an item and await its result. The first caller starts a flush; items that
arrive while a flush is in flight wait for the next one, which takes them all (up to
``max_batch``). There is no timer, so a lone request is written at once and a burst of
concurrent requests shares round trips — the technique databases use for commits
(PostgreSQL's ``commit_delay``, without the delay).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Coalescer(Generic[T, R]):
    """Coalesce concurrent ``submit`` calls into calls of ``flush(items) -> results``.

    Args:
        flush: writes a batch; returns one result per item, in order: a value, or an exception
            for that item's caller alone. If it raises, every caller of the batch gets the
            exception.
        max_batch: the most items one ``flush`` call gets.
    """

    def __init__(
        self, flush: Callable[[list[T]], Awaitable[list[R | Exception]]], max_batch: int
    ) -> None:
        self._flush = flush
        self._max_batch = max_batch
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        """Queue ``item`` for the next flush and return its result.

        Raises:
            whatever ``flush`` raised for the batch holding ``item``.
        """
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._run())
        # A cancelled caller leaves its item in the batch: like a lost response, the write may
        # still happen (shield keeps the shared future alive for the others).
        return await asyncio.shield(future)

    async def _run(self) -> None:
        try:
            while self._pending:
                batch = self._pending[: self._max_batch]
                del self._pending[: len(batch)]
                try:
                    results = await self._flush([item for item, _ in batch])
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if future.done():
                        continue
                    if isinstance(result, Exception):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._flusher = None
            for _, future in self._pending:  # only when this task itself was cancelled
                if not future.done():
                    future.cancel()
            self._pending.clear()
