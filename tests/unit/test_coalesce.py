"""Group commit: concurrent submits share flushes; errors reach the right callers."""

from __future__ import annotations

import asyncio

import pytest

from jobqueue.coalesce import Coalescer


async def test_coalescer_submits_during_flush_go_in_next_flush() -> None:
    batches: list[list[int]] = []
    release = asyncio.Event()

    async def flush(items: list[int]) -> list[int | Exception]:
        batches.append(items)
        if len(batches) == 1:
            await release.wait()
        return list(items)

    coalescer: Coalescer[int, int] = Coalescer(flush, max_batch=100)
    first = asyncio.create_task(coalescer.submit(0))
    await asyncio.sleep(0)
    await asyncio.sleep(0)  # the flusher is now inside flush([0])
    later = [asyncio.create_task(coalescer.submit(i)) for i in range(1, 5)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(first, *later) == [0, 1, 2, 3, 4]
    assert batches == [[0], [1, 2, 3, 4]]


async def test_coalescer_concurrent_submits_share_flushes() -> None:
    batches: list[list[int]] = []

    async def flush(items: list[int]) -> list[int | Exception]:
        batches.append(items)
        await asyncio.sleep(0)  # a round trip: later submits pile up meanwhile
        return [item * 10 for item in items]

    coalescer: Coalescer[int, int] = Coalescer(flush, max_batch=100)
    results = await asyncio.gather(*(coalescer.submit(i) for i in range(50)))
    assert results == [i * 10 for i in range(50)]
    # All 50 arrive before the flusher task first runs: one flush takes them all.
    assert batches == [list(range(50))]


async def test_coalescer_respects_max_batch() -> None:
    sizes: list[int] = []

    async def flush(items: list[int]) -> list[int | Exception]:
        sizes.append(len(items))
        await asyncio.sleep(0)
        return list(items)

    coalescer: Coalescer[int, int] = Coalescer(flush, max_batch=20)
    await asyncio.gather(*(coalescer.submit(i) for i in range(51)))
    assert sizes == [20, 20, 11]


async def test_coalescer_item_exception_reaches_only_its_caller() -> None:
    async def flush(items: list[int]) -> list[int | Exception]:
        return [ValueError(f"bad {i}") if i == 3 else i for i in items]

    coalescer: Coalescer[int, int] = Coalescer(flush, max_batch=100)
    results = await asyncio.gather(*(coalescer.submit(i) for i in range(5)), return_exceptions=True)
    assert [str(r) if isinstance(r, Exception) else r for r in results] == [0, 1, 2, "bad 3", 4]


async def test_coalescer_flush_failure_reaches_every_caller_of_the_batch() -> None:
    async def flush(items: list[int]) -> list[int | Exception]:
        raise ConnectionError("database away")

    coalescer: Coalescer[int, int] = Coalescer(flush, max_batch=100)
    with pytest.raises(ConnectionError, match="database away"):
        await coalescer.submit(1)
    # The coalescer recovers: the next submit gets its own flush.
    results = await asyncio.gather(coalescer.submit(2), return_exceptions=True)
    assert isinstance(results[0], ConnectionError)
