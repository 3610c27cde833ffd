"""A peer's runner as a child process (oban under Python 3.12, graphile-worker under Node.js).

The protocol: the child gets one JSON spec as its last argument and writes JSON objects, one a
line, on stdout (anything else on stdout is ignored; logs go to stderr). A phase ends with
``{"event": "result", ...}``. A measured drain adds a handshake so that the benchmark can read
the child's CPU time (psutil) and the database's transaction counter around exactly the worker's
lifetime: the child writes ``{"event": "ready"}`` before it opens any connection and waits for a
line on stdin; after the drain (worker stopped, connections closed) it writes ``{"event":
"done", ...}`` and waits for another line before exiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from bench.common import Admin, Sizes, connection, percentile, process_cpu_seconds, rate

STDERR_TAIL = 4_000
"""How much of a failed child's stderr goes into the exception (characters)."""


class PeerProcessError(RuntimeError):
    """The child exited or wrote an error instead of the expected event."""


class PeerProcess:
    """One child process speaking the protocol above."""

    def __init__(self, argv: Sequence[str], spec: dict[str, Any], cwd: Path) -> None:
        self.argv = [*argv, json.dumps(spec)]
        self.cwd = cwd
        self.proc: asyncio.subprocess.Process | None = None
        self.stderr = b""
        self._stderr_task: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv,
            cwd=self.cwd,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=2**24,
        )
        self._stderr_task = asyncio.create_task(self._collect_stderr())

    async def _collect_stderr(self) -> None:
        assert self.proc is not None
        assert self.proc.stderr is not None
        while chunk := await self.proc.stderr.read(65536):
            self.stderr = (self.stderr + chunk)[-STDERR_TAIL:]

    def _failure(self, what: str) -> PeerProcessError:
        tail = self.stderr.decode(errors="replace").strip()
        return PeerProcessError(f"{what} (command {self.argv[:2]}); stderr: {tail or '(empty)'}")

    async def event(self, expected: str, timeout: float) -> dict[str, Any]:
        """The next JSON line on stdout, which must be ``{"event": expected, ...}``."""
        assert self.proc is not None
        assert self.proc.stdout is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise self._failure(f"no {expected!r} event within {timeout:.0f} s")
            try:
                line = await asyncio.wait_for(self.proc.stdout.readline(), remaining)
            except TimeoutError:
                continue
            if not line:
                await self.wait(10)
                raise self._failure(
                    f"exited with {self.proc.returncode} before the {expected!r} event"
                )
            text = line.decode(errors="replace").strip()
            if not text.startswith("{"):
                continue
            message = json.loads(text)
            if message.get("event") == "error":
                raise self._failure(f"error: {message.get('error')}")
            if message.get("event") != expected:
                raise self._failure(f"expected {expected!r}, got {message.get('event')!r}")
            return message

    async def send(self, line: str = "go") -> None:
        assert self.proc is not None
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()

    async def wait(self, timeout: float = 30.0) -> int:
        """Wait for the child to exit (killing it after ``timeout``); its exit status."""
        assert self.proc is not None
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        if self._stderr_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._stderr_task, 5)
        return int(self.proc.returncode or 0)

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.wait(10)


async def run_phase(
    argv: Sequence[str], spec: dict[str, Any], cwd: Path, timeout: float = 300.0
) -> dict[str, Any]:
    """Run one phase that needs no handshake; its ``result`` event."""
    child = PeerProcess(argv, spec, cwd)
    await child.start()
    try:
        result = await child.event("result", timeout)
        code = await child.wait()
        if code:
            raise child._failure(f"exited with {code} after its result")
        return result
    finally:
        await child.kill()


async def measured_drain(
    admin: Admin,
    database: str,
    argv: Sequence[str],
    spec: dict[str, Any],
    cwd: Path,
    timeout: float,
) -> tuple[dict[str, Any], float, int]:
    """Run a drain child with the handshake: (its ``done`` event, the child's CPU seconds
    (psutil, user + system) from ``ready`` to ``done``, the database's transactions from before
    the child connects to after it has exited)."""
    child = PeerProcess(argv, spec, cwd)
    await child.start()
    try:
        await child.event("ready", 60)
        before = await admin.settled_xacts(database)
        cpu0 = process_cpu_seconds(child.pid)
        await child.send("go")
        done = await child.event("done", timeout)
        cpu = process_cpu_seconds(child.pid) - cpu0
        await child.send("exit")
        await child.event("result", 60)
        code = await child.wait()
        if code:
            raise child._failure(f"exited with {code} after the drain")
    finally:
        await child.kill()
    after = await admin.settled_xacts(database)
    return done, cpu, after - before


async def child_round(
    admin: Admin,
    sizes: Sizes,
    *,
    name: str,
    template: str,
    command: list[str],
    cwd: Path,
    enqueue: Callable[[str, Sizes], Awaitable[dict[str, Any]]],
    drain: Callable[[Admin, str, int, int], Awaitable[dict[str, Any]]],
    round_no: int,
    drain_jobs: int,
) -> dict[str, Any]:
    """One round of a child-process peer: enqueue, pickup (the child's ``pickup`` phase, its
    latencies in ms), drain, each on a fresh database made from ``template``."""
    m: dict[str, Any] = {}
    db = await admin.create(f"jqbench_{name}_r{round_no}_enqueue", template)
    m.update(await enqueue(admin.dsn(db), sizes))
    await admin.drop(db)

    db = await admin.create(f"jqbench_{name}_r{round_no}_pickup", template)
    spec = {
        "phase": "pickup",
        "dsn": admin.dsn(db),
        "jobs": sizes.pickup_jobs,
        "concurrency": sizes.drain_concurrency,
        "gap_seconds": sizes.pickup_gap_seconds,
    }
    latencies = (await run_phase(command, spec, cwd))["latencies_ms"]
    m["pickup_p50_ms"] = percentile(latencies, 50)
    m["pickup_p99_ms"] = percentile(latencies, 99)
    await admin.drop(db)

    db = await admin.create(f"jqbench_{name}_r{round_no}_drain", template)
    m.update(await drain(admin, db, drain_jobs, sizes.drain_concurrency))
    await admin.drop(db)
    return m


async def child_enqueue(
    command: list[str], cwd: Path, dsn: str, sizes: Sizes, *, name: str, count_sql: str
) -> dict[str, Any]:
    """The child's ``enqueue`` phase: single, concurrent and batch rates, in that order, on one
    database; ``count_sql`` counts the stored jobs, which must be all of them (20 warm-up)."""
    spec = {
        "phase": "enqueue",
        "dsn": dsn,
        "producers": sizes.peer_producers,
        "single": sizes.enqueue_single_jobs,
        "concurrent": sizes.enqueue_concurrent_jobs,
        "batch": sizes.enqueue_batch_jobs,
    }
    result = await run_phase(command, spec, cwd)
    async with connection(dsn) as conn:
        stored = await conn.fetchval(count_sql)
    expected = (
        20 + sizes.enqueue_single_jobs + sizes.enqueue_concurrent_jobs + sizes.enqueue_batch_jobs
    )
    if stored != expected:
        raise RuntimeError(f"{name} enqueue: {stored} rows, expected {expected}")
    return {k: v for k, v in result.items() if k != "event"}


def drain_figures(
    jobs: int, first: float, last: float, returned: float, transactions: int, cpu: float
) -> dict[str, Any]:
    """A drain's figures from its first task start, last completion and the child's return
    (seconds), its transactions and its CPU seconds."""
    return {
        "drain_jobs_per_s": rate(jobs, last - first),
        "drain_seconds": last - first,
        "drain_until_return_jobs_per_s": rate(jobs, returned - first),
        "drain_jobs": jobs,
        "transactions_per_job": transactions / jobs,
        "transactions": transactions,
        "worker_cpu_us_per_job": cpu * 1e6 / jobs,
    }
