"""The catalog of names live processes announced: refreshed on a miss at most once per
``min_refresh_seconds``."""

from __future__ import annotations

from jobqueue.service import Catalog


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_catalog_refresh_reads_at_most_once_per_interval() -> None:
    reads: list[int] = []

    async def reader() -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
        reads.append(1)
        return frozenset({f"task{len(reads)}"}), frozenset({"q"}), frozenset()

    clock = Clock()
    catalog = Catalog(reader, min_refresh_seconds=1.0, clock=clock)
    assert await catalog.refresh() is True
    assert catalog.live.tasks == frozenset({"task1"})
    clock.now += 0.5
    assert await catalog.refresh() is False
    clock.now += 0.6
    assert await catalog.refresh() is True
    assert catalog.live.tasks == frozenset({"task2"})
    assert len(reads) == 2


async def test_catalog_update_counts_as_a_read() -> None:
    async def reader() -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
        raise AssertionError("not read: the registry loop's update is fresh")

    clock = Clock()
    catalog = Catalog(reader, min_refresh_seconds=1.0, clock=clock)
    catalog.update(frozenset({"a"}), frozenset({"b"}))
    assert await catalog.refresh() is False
    assert catalog.live.queues == frozenset({"b"})


async def test_catalog_without_reader_never_refreshes() -> None:
    assert await Catalog().refresh() is False


async def test_catalog_invalidate_lets_the_next_miss_read_at_once() -> None:
    reads: list[int] = []

    async def reader() -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
        reads.append(1)
        return frozenset({"thumbnail"}), frozenset({"q"}), frozenset({"node"})

    clock = Clock()
    catalog = Catalog(reader, min_refresh_seconds=1.0, clock=clock)
    catalog.update(frozenset(), frozenset())
    catalog.invalidate()
    assert await catalog.refresh() is True
    assert catalog.live.tasks == frozenset({"thumbnail"})
    assert catalog.live.open_queues == frozenset({"node"})


async def test_catalog_update_after_invalidate_does_not_block_the_next_read() -> None:
    reads: list[int] = []

    async def reader() -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
        reads.append(1)
        return frozenset({"thumbnail"}), frozenset({"q"}), frozenset()

    clock = Clock()
    catalog = Catalog(reader, min_refresh_seconds=1.0, clock=clock)
    catalog.invalidate()  # a remote worker announced itself ...
    catalog.update(frozenset(), frozenset())  # ... while the registry loop read the old rows
    assert await catalog.refresh() is True
    assert catalog.live.tasks == frozenset({"thumbnail"})
