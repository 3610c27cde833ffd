"""``python -m bench.duplicate_keys``: what refusing duplicate JSON keys costs a batch enqueue.

Not part of ``make bench``. Two measurements, on bodies shaped like the benchmark's batches
(``{"jobs": [{"task": "noop"}, ...]}``, compact, as ``bench/httpload.py`` sends them) and, for
comparison, jobs with a three-key payload:

1. parse only: ``json.loads`` (what FastAPI does) against :func:`jobqueue.api.bodies.loads_unique`
   (``json.JSONDecoder`` with an ``object_pairs_hook`` that compares ``len(dict(pairs))`` with
   ``len(pairs)``), 1,000 and 10,000 jobs, median of ``--repeat`` timings;
2. parse + enqueue: ``POST /jobs/batch`` with 1,000 jobs through the whole app in this process
   (middleware, route, validation, the INSERT on a fresh database; no HTTP parsing), with the
   check on and off (``loads_unique`` replaced by ``json.loads``) in pairs of requests run one
   right after the other (``--rounds`` pairs, which goes first alternating), so that drift (a
   growing table, the machine's other load) hits both alike. For the wall time, the process's
   CPU time and the time spent in garbage collection (the check allocates a list and tuples
   per object), it prints the median without and with the check and the median of the paired
   differences with a 95 % bootstrap interval, as a share of the median wall time without.

Needs the PostgreSQL of ``BENCH_DATABASE_URL`` (default ``postgres@127.0.0.1:5432``), where it
creates and drops ``jqbench_dupkeys_<pid>``. Prints a small table on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import statistics
import time
from collections.abc import Callable, MutableMapping
from typing import Any, NamedTuple

from bench.common import DB_PREFIX, DEFAULT_ADMIN_URL, Admin, log
from jobqueue.api import bodies
from jobqueue.api.app import create_app
from jobqueue.db.engine import normalise_url
from jobqueue.db.migrations import upgrade_to_head
from jobqueue.logs import configure_logging
from jobqueue.settings import Settings
from jobqueue.tasks.registry import TaskRegistry, default_registry


def batch_body(jobs: int, *, payload: bool = False) -> bytes:
    """A compact ``POST /jobs/batch`` body of ``jobs`` no-op jobs (with a small payload)."""
    specs: list[dict[str, Any]] = (
        [{"task": "noop", "payload": {"n": i, "user": f"u{i}", "flag": True}} for i in range(jobs)]
        if payload
        else [{"task": "noop"}] * jobs
    )
    return json.dumps({"jobs": specs}, separators=(",", ":")).encode()


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    """The median of ``repeat`` timings of ``fn()``, in milliseconds (after one warm-up)."""
    fn()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def parse_only(repeat: int) -> list[tuple[str, float, float]]:
    """``(body, json.loads ms, loads_unique ms)`` for each body shape."""
    rows = []
    for jobs in (1000, 10_000):
        for payload in (False, True):
            body = batch_body(jobs, payload=payload)
            name = f"{jobs:,} jobs{' + 3-key payload' if payload else ''} ({len(body):,} B)"
            plain = median_ms(lambda body=body: json.loads(body), repeat)  # type: ignore[misc]
            checked = median_ms(lambda body=body: bodies.loads_unique(body), repeat)  # type: ignore[misc]
            rows.append((name, plain, checked))
    return rows


class Sample(NamedTuple):
    """One request: wall time, the process's CPU time, time in garbage collection (seconds)."""

    wall: float
    cpu: float
    gc: float


def noop_registry() -> TaskRegistry:
    """The built-in tasks and ``noop``."""
    tasks = default_registry.copy()

    async def noop(_ctx: Any) -> None:
        return None

    tasks.register("noop", noop)
    return tasks


async def request_ab(admin: Admin, rounds: int, payload: bool) -> list[tuple[Sample, Sample]]:
    """``rounds`` pairs of 1,000-job ``POST /jobs/batch`` requests: ``(without, with)`` the
    check, run one right after the other (which goes first alternates)."""
    name = await admin.create(f"{DB_PREFIX}dupkeys_{os.getpid()}")
    url = normalise_url(admin.dsn(name))
    await asyncio.to_thread(upgrade_to_head, url)
    settings = Settings(_env_file=None, database_url=url, workers_enabled=False, auto_migrate=False)
    app = create_app(settings, registry=noop_registry())
    body = batch_body(1000, payload=payload)
    scope: dict[str, Any] = {
        "type": "http",
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/jobs/batch",
        "raw_path": b"/jobs/batch",
        "root_path": "",
        "query_string": b"",
        "server": ("localhost", 80),
        "client": ("127.0.0.1", 50000),
        "headers": [
            (b"host", b"localhost"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
    }

    gc_seconds = 0.0
    gc_started = 0.0

    def on_gc(phase: str, _info: dict[str, int]) -> None:
        nonlocal gc_seconds, gc_started
        if phase == "start":
            gc_started = time.perf_counter()
        else:
            gc_seconds += time.perf_counter() - gc_started

    async def one() -> Sample:
        nonlocal gc_seconds
        messages = [{"type": "http.request", "body": body, "more_body": False}]
        status = 0

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop()
            await asyncio.Future()  # never: the app does not wait for a disconnect here
            raise AssertionError

        async def send(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        gc_seconds = 0.0
        started, cpu = time.perf_counter(), time.process_time()
        await app(dict(scope), receive, send)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        assert status == 201, status
        return Sample(elapsed, cpu, gc_seconds)

    checked = bodies.loads_unique
    pairs: list[tuple[Sample, Sample]] = []
    gc.callbacks.append(on_gc)
    try:
        async with app.router.lifespan_context(app):
            for _ in range(20):
                await one()
            for i in range(rounds):
                got: dict[bool, Sample] = {}
                for check in (True, False) if i % 2 else (False, True):
                    bodies.loads_unique = checked if check else json.loads  # type: ignore[assignment]
                    got[check] = await one()
                pairs.append((got[False], got[True]))
    finally:
        gc.callbacks.remove(on_gc)
        bodies.loads_unique = checked
        await admin.drop(name)
    return pairs


def paired(pairs: list[tuple[Sample, Sample]], field: str) -> tuple[float, float, float, float]:
    """``(median without, median with, median of the paired differences, half-width of its 95 %
    bootstrap interval)`` of one field of the samples, in seconds."""
    without = [getattr(a, field) for a, _ in pairs]
    with_check = [getattr(b, field) for _, b in pairs]
    differences = [b - a for a, b in zip(without, with_check, strict=True)]
    rng = random.Random(1)
    resampled = sorted(
        statistics.median(rng.choices(differences, k=len(differences))) for _ in range(1000)
    )
    half_width = (resampled[975] - resampled[25]) / 2
    return (
        statistics.median(without),
        statistics.median(with_check),
        statistics.median(differences),
        half_width,
    )


async def main() -> None:
    """Run both measurements and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=200, help="timings per parse figure")
    parser.add_argument("--rounds", type=int, default=400, help="request pairs per A/B")
    args = parser.parse_args()
    configure_logging("json", "warning")
    print("parse only (median ms)            json.loads   loads_unique   added")
    for name, plain, checked in parse_only(args.repeat):
        print(f"  {name:36} {plain:8.3f}   {checked:10.3f}   {checked - plain:+.3f} ms")
    admin = Admin(os.environ.get("BENCH_DATABASE_URL", DEFAULT_ADMIN_URL))
    await admin.open()
    try:
        print(
            "POST /jobs/batch, 1,000 jobs (median ms)   without    with   "
            "added (median of paired differences, 95 % CI)"
        )
        for payload in (False, True):
            log(f"A/B of {args.rounds} request pairs (payload={payload})")
            pairs = await request_ab(admin, args.rounds, payload)
            shape = "+ 3-key payload" if payload else "{task}"
            for field in ("wall", "cpu", "gc"):
                without, with_check, added, half_width = paired(pairs, field)
                share = added / paired(pairs, "wall")[0]
                print(
                    f"  {shape:16} {field:4}                    {without * 1000:8.2f} "
                    f"{with_check * 1000:7.2f}   {added * 1000:+.2f} ± {half_width * 1000:.2f} ms "
                    f"({share:+.1%} of the wall time)"
                )
    finally:
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
