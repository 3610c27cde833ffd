"""jobqueue's runner: the real service (``python -m jobqueue serve``) as a subprocess.

- enqueue figures: the real uvicorn over real HTTP, driven by :mod:`bench.httpload` in another
  process. The service runs API-only (``JOBQUEUE_WORKERS_ENABLED=false``) so that, as for the
  peers' library enqueue, nothing consumes the jobs while they are being created.
- pickup latency: the service with its worker pool, idle; ``stamp`` jobs one at a time.
- drain: the service with its worker pool (concurrency 50) running and idle; N no-op jobs are
  inserted with one ``INSERT … SELECT generate_series`` whose ``run_at`` is 1.5 s ahead, so they
  all become due at once; the rate is N / (last ``finished_at`` − first ``started_at``), read
  from the table. Transactions: ``pg_stat_database`` of the drain database from just before
  the INSERT (service ready) to after the service has exited (every backend flushed its
  counters), minus the benchmark's own statements.
- scale (full mode only): the drain rate over the first jobs with 10,000 vs 1,000,000 queued,
  and the server's RSS before and after processing the big backlog.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import (
    REPO_ROOT,
    Admin,
    Sizes,
    connection,
    fetch_one,
    free_port,
    log,
    percentile,
    process_cpu_seconds,
    rate,
)
from bench.httpload import Client, build_request

NAME = "jobqueue"
TEMPLATE = "jqbench_tpl_jobqueue"
LEAD_SECONDS = 1.5
"""How far ahead the drained jobs' ``run_at`` lies: the INSERT commits well before they are due."""

SMALL_BACKLOG_REPEATS = 3
MIN_SCALE_DRAIN_SECONDS = 30.0
"""The big backlog is drained for at least this long (about 200,000+ jobs here), budget or not."""

_INSERT = """
INSERT INTO jobs (task, run_at)
SELECT 'noop', now() + make_interval(secs => $2) FROM generate_series(1, $1)
"""
# One claim-shaped probe: the next due job the dispatcher would take (ix_jobs_claim) and how many
# are in hand. Cheap at any backlog, unlike count(*).
_PROGRESS = """
SELECT (SELECT id FROM jobs WHERE status = 'todo' AND queue = 'default'
        ORDER BY priority DESC, run_at, id LIMIT 1) AS next_id,
       (SELECT count(*) FROM jobs WHERE status = 'in_progress') AS busy
"""
_WINDOW = """
SELECT count(*) AS jobs,
       count(*) FILTER (WHERE status <> 'done') AS not_done,
       min(run_at) AS first_due, min(started_at) AS first_started,
       max(finished_at) AS last_finished
FROM jobs WHERE id > $1 AND id <= $2
"""
# The longest pause between two consecutive claims of a drain: about the poll interval (1 s)
# when a claim waited for the poll instead of being woken as slots freed.
_GAP = """
SELECT coalesce(extract(epoch FROM max(gap)), 0)::float8 * 1000 AS gap_ms
FROM (SELECT started_at - lag(started_at) OVER (ORDER BY started_at) AS gap
      FROM jobs WHERE id > $1 AND id <= $2) AS g
"""
# The same for outcome writes: a long pause between two consecutive finishes (a write that
# waited on a lock, or a completer that stalled) stretches a drain.
_FINISH_GAP = """
SELECT coalesce(extract(epoch FROM max(gap)), 0)::float8 * 1000 AS gap_ms
FROM (SELECT finished_at - lag(finished_at) OVER (ORDER BY finished_at) AS gap
      FROM jobs WHERE id > $1 AND id <= $2) AS g
"""
_MARKS = """
SELECT rn, extract(epoch FROM finished_at)::float8 AS t
FROM (SELECT finished_at, row_number() OVER (ORDER BY finished_at, id) AS rn
      FROM jobs WHERE id > $1 AND id <= $2 AND status = 'done') AS f
WHERE rn % $3 = 0
ORDER BY rn
"""


SERVE_COMMAND = [
    sys.executable,
    "-c",
    "import sys; from jobqueue.cli import app; sys.argv[0] = 'jobqueue'; sys.exit(app())",
    "serve",
]
"""Exactly what the ``jobqueue`` console script runs (``jobqueue.cli:app``) with ``serve``; spelled
so that the command line does not contain "jobqueue serve": on a shared machine, someone's
``pkill -f "jobqueue serve"`` would otherwise stop the benchmark's service mid-measurement."""


STALL_SECONDS = 15.0
STALL_MIN_JOBS = 500
"""A drain that claims fewer than STALL_MIN_JOBS jobs in STALL_SECONDS has stalled: its worker
pool stopped, or it only claims on the 1-s poll (concurrency 50 gives 750 in 15 s at best)."""


class ServiceStalled(RuntimeError):
    """The service is up but its workers stopped making progress (see its log)."""


class ServiceDied(RuntimeError):
    """The service process ended while the benchmark needed it (crashed, or killed from outside;
    the orchestrator retries the round once)."""


def service_env(database_url: str, *, workers: bool, concurrency: int) -> dict[str, str]:
    """The service's environment: the caller's minus any JOBQUEUE_* plus ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBQUEUE_")}
    env.update(
        JOBQUEUE_DATABASE_URL=database_url,
        JOBQUEUE_CONCURRENCY=str(concurrency),
        JOBQUEUE_LOG_LEVEL="warning",
        JOBQUEUE_LOG_FORMAT="json",
        JOBQUEUE_TASK_MODULES="bench.tasks",
        JOBQUEUE_WORKERS_ENABLED="true" if workers else "false",
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p),
    )
    return env


@dataclass
class Service:
    """``python -m jobqueue serve`` on a free port, started in a scratch working directory (so
    no ``.env`` file changes its settings), stderr kept in a log file for errors."""

    database_url: str
    workers: bool = True
    concurrency: int = 50
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    workdir: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    """Settings on top of :func:`service_env`'s, e.g. ``{"JOBQUEUE_LIMIT_CONCURRENCY": "1"}``."""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log_tail(self, lines: int = 30) -> str:
        if self.workdir is None:
            return ""
        path = self.workdir / "service.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    async def start(self, timeout: float = 60.0) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="jqbench-"))
        logfile = (self.workdir / "service.log").open("wb")
        self.proc = subprocess.Popen(
            [
                *SERVE_COMMAND,
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            env={
                **service_env(
                    self.database_url, workers=self.workers, concurrency=self.concurrency
                ),
                **self.env,
            },
            cwd=self.workdir,
            stdout=logfile,
            stderr=subprocess.STDOUT,
        )
        logfile.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise ServiceDied(f"jobqueue serve exited at start:\n{self.log_tail()}")
            try:
                client = Client(self.port)
                await client.open()
                status, _ = await client.request(build_request("GET", "/readyz"))
                await client.close()
                if status == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"jobqueue serve not ready after {timeout:.0f} s:\n{self.log_tail()}"
                )
            await asyncio.sleep(0.05)

    def check_alive(self, what: str) -> None:
        """Raise :class:`ServiceDied` if the process has ended."""
        if self.proc is not None and self.proc.poll() is not None:
            raise ServiceDied(
                f"jobqueue serve ended (exit {self.proc.returncode}) during {what}:\n"
                f"{self.log_tail()}"
            )

    async def stop(self, timeout: float = 40.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    async def readyz(self) -> tuple[int, str]:
        """``GET /readyz``: (status, body)."""
        client = Client(self.port)
        await client.open()
        try:
            status, body = await client.request(build_request("GET", "/readyz"))
        finally:
            await client.close()
        return status, body.decode(errors="replace")

    def first_error(self) -> str | None:
        """The first error-level event in the service's log, shortened, or None."""
        if self.workdir is None:
            return None
        for line in (self.workdir / "service.log").read_text(errors="replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and event.get("level") in ("error", "critical"):
                return f"{event.get('event')}: {event.get('task', '')} {event.get('error', '')}"
        return None

    async def stalled(self, what: str) -> ServiceStalled:
        """A :class:`ServiceStalled` describing why ``what`` made no progress."""
        try:
            status, body = await self.readyz()
            ready = f"/readyz {status} {body[:300]}"
        except OSError as exc:
            ready = f"/readyz unreachable: {exc}"
        return ServiceStalled(
            f"fewer than {STALL_MIN_JOBS} jobs claimed in {STALL_SECONDS:.0f} s during {what}; "
            f"{ready}; first error in the service log: {self.first_error()}"
        )

    def rss_bytes(self) -> int:
        import psutil  # type: ignore[import-untyped]

        return int(psutil.Process(self.pid).memory_info().rss)

    async def __aenter__(self) -> Service:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def load(svc: Service, phases: list[dict[str, Any]]) -> dict[str, Any]:
    """:func:`loadgen` against ``svc``; a failure because the service died is ServiceDied."""
    try:
        return await loadgen({"port": svc.port, "phases": phases})
    except RuntimeError:
        for _ in range(100):  # a service being stopped from outside takes a moment to exit
            svc.check_alive("the HTTP load")
            await asyncio.sleep(0.1)
        raise


async def loadgen(spec: dict[str, Any]) -> dict[str, Any]:
    """Run :mod:`bench.httpload` in its own process and return its JSON output."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.httpload",
        json.dumps(spec),
        cwd=REPO_ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"load generator failed ({proc.returncode}): {err.decode()[-2000:]}")
    result: dict[str, Any] = json.loads(out)
    return result


async def prepare(admin: Admin) -> None:
    """Create the migrated template database (``python -m jobqueue migrate``)."""
    await admin.create(TEMPLATE)
    env = service_env(admin.dsn(TEMPLATE), workers=False, concurrency=1)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "jobqueue",
        "migrate",
        env=env,
        cwd=tempfile.gettempdir(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"jobqueue migrate failed: {out.decode()[-2000:]}")


async def _insert_due(conn: Any, jobs: int, lead: float) -> tuple[int, int]:
    """Insert ``jobs`` no-op jobs due in ``lead`` seconds; returns their id range (lo, hi]."""
    low = int(await conn.fetchval("SELECT coalesce(max(id), 0) FROM jobs"))
    await conn.execute(_INSERT, jobs, lead)
    high = int(await conn.fetchval("SELECT max(id) FROM jobs"))
    return low, high


@dataclass
class StallWatch:
    """Tells a drain that has stalled: fewer than STALL_MIN_JOBS claimed (the next due id moves
    by the number claimed, ids being consecutive) in a STALL_SECONDS window, from ``since``."""

    since: float
    start_id: int | None = None

    def stalled(self, next_id: int | None, now: float) -> bool:
        if now < self.since:
            return False
        if self.start_id is None:
            self.start_id = next_id if next_id is not None else 0
            return False
        claimed = (
            next_id if next_id is not None else self.start_id + STALL_MIN_JOBS
        ) - self.start_id
        if claimed >= STALL_MIN_JOBS:
            self.since, self.start_id = now, next_id
            return False
        return now - self.since > STALL_SECONDS


async def _wait_drained(conn: Any, svc: Service, timeout: float, interval: float) -> int:
    """Poll until no job is todo or in progress; returns the number of statements it ran."""
    statements = 0
    deadline = time.monotonic() + timeout
    watch = StallWatch(time.monotonic())
    while True:
        await asyncio.sleep(interval)
        row = await fetch_one(conn, _PROGRESS)
        statements += 1
        if row["next_id"] is None and row["busy"] == 0:
            return statements
        svc.check_alive("the drain")
        if watch.stalled(row["next_id"], time.monotonic()):
            raise await svc.stalled("the drain")
        if time.monotonic() > deadline:
            raise TimeoutError(f"drain not finished after {timeout:.0f} s (next {row['next_id']})")


async def drain(admin: Admin, database: str, jobs: int, concurrency: int) -> dict[str, Any]:
    """The drain figure and transactions per job (see the module docstring)."""
    svc = Service(admin.dsn(database), workers=True, concurrency=concurrency)
    await svc.start()
    try:
        await asyncio.sleep(0.5)  # let the start-up settle: the service is idle
        before = await admin.xacts(database)
        async with connection(admin.dsn(database)) as conn:
            cpu0 = process_cpu_seconds(svc.pid)
            low, high = await _insert_due(conn, jobs, LEAD_SECONDS)
            ours = 3
            ours += await _wait_drained(conn, svc, timeout=600, interval=0.2)
            cpu = process_cpu_seconds(svc.pid) - cpu0
            window = await fetch_one(conn, _WINDOW, low, high)
            gap_ms = float(await conn.fetchval(_GAP, low, high))
            finish_gap_ms = float(await conn.fetchval(_FINISH_GAP, low, high))
            ours += 3
    finally:
        await svc.stop()
    after = await admin.settled_xacts(database)
    if window["jobs"] != jobs or window["not_done"]:
        raise RuntimeError(f"drain: {dict(window)} for {jobs} jobs")
    busy = (window["last_finished"] - window["first_started"]).total_seconds()
    from_due = (window["last_finished"] - window["first_due"]).total_seconds()
    return {
        "drain_jobs_per_s": rate(jobs, busy),
        "drain_from_due_jobs_per_s": rate(jobs, from_due),
        "drain_first_claim_lag_s": (window["first_started"] - window["first_due"]).total_seconds(),
        "drain_seconds": busy,
        "drain_max_claim_gap_ms": gap_ms,
        "drain_max_finish_gap_ms": finish_gap_ms,
        "transactions_per_job": (after - before - ours) / jobs,
        "transactions": after - before - ours,
        "worker_cpu_us_per_job": cpu * 1e6 / jobs,
    }


async def remote_drain(admin: Admin, database: str, jobs: int, concurrency: int) -> dict[str, Any]:
    """The drain of one remote Python worker process over the HTTP lease API (``jobqueue
    remote-worker``, concurrency ``concurrency``, leases of up to the free slots), against a
    service that runs no workers of its own: the same window as :func:`drain`."""
    svc = Service(admin.dsn(database), workers=False, concurrency=concurrency)
    await svc.start()
    worker: asyncio.subprocess.Process | None = None
    try:
        env = service_env(admin.dsn(database), workers=False, concurrency=concurrency)
        worker = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "jobqueue",
            "remote-worker",
            "--url",
            f"http://127.0.0.1:{svc.port}",
            "--tasks",
            "bench.remote_tasks",
            "--queues",
            "default",
            "--concurrency",
            str(concurrency),
            "--name",
            "bench-remote",
            env=env,
            cwd=tempfile.gettempdir(),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        await asyncio.sleep(1.0)  # the worker's first (long-polling) lease call is in
        async with connection(admin.dsn(database)) as conn:
            cpu0 = process_cpu_seconds(worker.pid)
            low, high = await _insert_due(conn, jobs, LEAD_SECONDS)
            await _wait_drained(conn, svc, timeout=600, interval=0.2)
            cpu = process_cpu_seconds(worker.pid) - cpu0
            window = await fetch_one(conn, _WINDOW, low, high)
    finally:
        if worker is not None and worker.returncode is None:
            worker.terminate()
            await worker.wait()
        await svc.stop()
    if window["jobs"] != jobs or window["not_done"]:
        raise RuntimeError(f"remote drain: {dict(window)} for {jobs} jobs")
    busy = (window["last_finished"] - window["first_started"]).total_seconds()
    return {
        "remote_drain_jobs_per_s": rate(jobs, busy),
        "remote_worker_cpu_us_per_job": cpu * 1e6 / jobs,
    }


async def floor(sizes: Sizes) -> dict[str, Any]:
    """The bare FastAPI floor (``bench.floor_app``) under the enqueue's single and concurrent
    load, requests/s: the same requests, clients and server options as jobqueue's."""
    port = free_port()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "uvicorn",
        "bench.floor_app:app",
        "--port",
        str(port),
        "--http",
        "httptools",
        "--loop",
        "uvloop",
        "--log-level",
        "warning",
        "--no-access-log",
        env=env,
        cwd=tempfile.gettempdir(),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                _reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.returncode is not None:
                    raise RuntimeError("the FastAPI floor did not start") from None
                await asyncio.sleep(0.1)
        res = await loadgen(
            {
                "port": port,
                "phases": [
                    {"kind": "single", "jobs": sizes.enqueue_single_jobs},
                    {
                        "kind": "concurrent",
                        "jobs": sizes.enqueue_concurrent_jobs,
                        "clients": sizes.http_clients,
                    },
                ],
            }
        )
    finally:
        proc.terminate()
        await proc.wait()
    return {
        "floor_single_requests_per_s": res["single"]["jobs_per_s"],
        "floor_concurrent_requests_per_s": res["concurrent"]["jobs_per_s"],
    }


async def run_round(admin: Admin, sizes: Sizes, round_no: int) -> dict[str, Any]:
    """One round: enqueue (single, concurrent, batch), pickup, drain; a fresh database each."""
    m: dict[str, Any] = {}

    db = await admin.create(f"jqbench_jobqueue_r{round_no}_enqueue", TEMPLATE)
    async with Service(admin.dsn(db), workers=False) as svc:
        res = await load(
            svc,
            [
                {"kind": "single", "jobs": sizes.enqueue_single_jobs},
                {
                    "kind": "concurrent",
                    "jobs": sizes.enqueue_concurrent_jobs,
                    "clients": sizes.http_clients,
                },
                {
                    "kind": "batch",
                    "jobs": sizes.enqueue_batch_jobs,
                    "per_request": sizes.http_batch_size,
                },
            ],
        )
    async with connection(admin.dsn(db)) as conn:
        stored = await conn.fetchval("SELECT count(*) FROM jobs")
    expected = (
        sizes.enqueue_single_jobs + 20 + sizes.enqueue_concurrent_jobs + sizes.enqueue_batch_jobs
    )
    if stored != expected:
        raise RuntimeError(f"jobqueue enqueue: {stored} rows stored, expected {expected}")
    m["enqueue_single_jobs_per_s"] = res["single"]["jobs_per_s"]
    m["enqueue_concurrent_jobs_per_s"] = res["concurrent"]["jobs_per_s"]
    m["enqueue_batch_jobs_per_s"] = res["batch"]["jobs_per_s"]
    await admin.drop(db)
    m.update(await floor(sizes))

    db = await admin.create(f"jqbench_jobqueue_r{round_no}_pickup", TEMPLATE)
    async with Service(admin.dsn(db), workers=True, concurrency=sizes.drain_concurrency) as svc:
        await asyncio.sleep(0.5)
        res = await load(
            svc,
            [
                {
                    "kind": "pickup",
                    "jobs": sizes.pickup_jobs,
                    "gap_seconds": sizes.pickup_gap_seconds,
                }
            ],
        )
    latencies = res["pickup"]["latencies_ms"]
    m["pickup_p50_ms"] = percentile(latencies, 50)
    m["pickup_p99_ms"] = percentile(latencies, 99)
    await admin.drop(db)

    db = await admin.create(f"jqbench_jobqueue_r{round_no}_drain", TEMPLATE)
    try:
        m.update(await drain(admin, db, sizes.drain_jobs, sizes.drain_concurrency))
    except ServiceStalled as exc:
        log(f"warning: round {round_no} jobqueue drain stalled: {exc}")
        m["drain_error"] = str(exc)
    await admin.drop(db)

    db = await admin.create(f"jqbench_jobqueue_r{round_no}_remote", TEMPLATE)
    try:
        m.update(await remote_drain(admin, db, sizes.drain_jobs, sizes.drain_concurrency))
    except ServiceStalled as exc:
        log(f"warning: round {round_no} remote drain stalled: {exc}")
        m["remote_drain_error"] = str(exc)
    await admin.drop(db)
    return m


async def scale(admin: Admin, sizes: Sizes, deadline: float) -> dict[str, Any]:
    """Drain rate with a small vs a large backlog, and RSS growth over the large one.

    One service lifetime on one fresh database: (1) the small backlog (10,000 jobs) is drained,
    which also warms the service up; RSS is read then, idle. (2) The large backlog is inserted
    with one INSERT … SELECT generate_series (``run_at`` ahead of the INSERT and VACUUM ANALYZE),
    and drained until done or until ``deadline`` (time.monotonic()); RSS is read again. Rates
    come from ``finished_at``: the first ``scale_window_jobs`` of each backlog.
    """
    db = await admin.create("jqbench_jobqueue_scale", TEMPLATE)
    dsn = admin.dsn(db)
    window_jobs = sizes.scale_window_jobs
    out: dict[str, Any] = {}
    svc = Service(dsn, workers=True, concurrency=sizes.drain_concurrency)
    await svc.start()
    try:
        async with connection(dsn) as conn:
            # Warm-up (imports, prepared statements, pools), then the small backlog.
            await _insert_due(conn, 2_000, LEAD_SECONDS)
            await _wait_drained(conn, svc, timeout=300, interval=0.2)
            small = sizes.scale_small_backlog
            small_rates: list[float] = []
            small_gaps: list[float] = []
            small_finish_gaps: list[float] = []
            small_insert_s = float("inf")
            for _ in range(SMALL_BACKLOG_REPEATS):  # a short drain is noisy: median of three
                t_small = time.monotonic()
                low, high = await _insert_due(conn, small, LEAD_SECONDS)
                small_insert_s = min(small_insert_s, time.monotonic() - t_small)
                await _wait_drained(conn, svc, timeout=300, interval=0.2)
                w = await fetch_one(conn, _WINDOW, low, high)
                busy = (w["last_finished"] - w["first_started"]).total_seconds()
                small_rates.append(rate(small, busy) or 0.0)
                small_gaps.append(float(await conn.fetchval(_GAP, low, high)))
                small_finish_gaps.append(float(await conn.fetchval(_FINISH_GAP, low, high)))
            out["drain_10k_jobs_per_s"] = statistics.median(small_rates)
            out["drain_10k_runs_jobs_per_s"] = small_rates
            out["drain_10k_runs_max_claim_gap_ms"] = small_gaps
            out["drain_10k_runs_max_finish_gap_ms"] = small_finish_gaps
            await asyncio.sleep(1.0)
            rss_before = svc.rss_bytes()

            large = sizes.scale_large_backlog
            log(f"jobqueue scale: inserting {large:,} jobs")
            t0 = time.monotonic()
            low = int(await conn.fetchval("SELECT coalesce(max(id), 0) FROM jobs"))
            # The lead must cover the INSERT and VACUUM ANALYZE, so that every job becomes due
            # at once after both: scaled from the small insert, with a margin.
            lead = 3.0 + 1.4 * small_insert_s * large / small
            await conn.execute(_INSERT, large, lead)
            high = int(await conn.fetchval("SELECT max(id) FROM jobs"))
            await conn.execute("VACUUM ANALYZE jobs")
            prepared = time.monotonic() - t0
            if prepared > lead:
                log(f"warning: insert + vacuum took {prepared:.1f} s, over the lead {lead:.1f} s")
            out["scale_insert_and_vacuum_s"] = prepared
            out["scale_lead_s"] = lead
            log(f"jobqueue scale: inserted in {prepared:.1f} s; draining until done or the budget")
            # Whatever the budget says, give the big backlog at least MIN_SCALE_DRAIN_SECONDS.
            deadline = max(deadline, t0 + lead + MIN_SCALE_DRAIN_SECONDS)
            cpu0 = process_cpu_seconds(svc.pid)
            completed = True
            watch = StallWatch(t0 + lead)
            while True:
                await asyncio.sleep(2.0)
                row = await fetch_one(conn, _PROGRESS)
                if row["next_id"] is None and row["busy"] == 0:
                    break
                svc.check_alive("the scale drain")
                now = time.monotonic()
                status, _ = await svc.readyz()
                if status != 200 or watch.stalled(row["next_id"], now):
                    stall = await svc.stalled("the big-backlog drain")
                    log(f"warning: jobqueue scale: {stall}")
                    out["scale_error"] = str(stall)
                    completed = False
                    break
                if now > deadline:
                    completed = False
                    break
            rss_after = svc.rss_bytes()
            cpu = process_cpu_seconds(svc.pid) - cpu0
    finally:
        await svc.stop()
    async with connection(dsn) as conn:
        w = await fetch_one(conn, _WINDOW, low, high)
        processed = int(
            await conn.fetchval(
                "SELECT count(*) FROM jobs WHERE id > $1 AND id <= $2 AND status = 'done'",
                low,
                high,
            )
        )
        step = 50_000 if processed >= 100_000 else 10_000
        marks = await conn.fetch(_MARKS, low, high, window_jobs)
        steps = await conn.fetch(_MARKS, low, high, step)
    first = w["first_started"].timestamp() if w["first_started"] else 0.0
    out["drain_1m_window_jobs_per_s"] = rate(window_jobs, marks[0]["t"] - first) if marks else None
    out["drain_1m_window_jobs"] = window_jobs
    out["drain_1m_over_10k"] = (
        out["drain_1m_window_jobs_per_s"] / out["drain_10k_jobs_per_s"]
        if out["drain_1m_window_jobs_per_s"] and out["drain_10k_jobs_per_s"]
        else None
    )
    previous_t, previous_n, by_step = first, 0, []
    for mark in steps:
        by_step.append(
            {
                "up_to_job": mark["rn"],
                "jobs_per_s": rate(mark["rn"] - previous_n, mark["t"] - previous_t),
            }
        )
        previous_t, previous_n = mark["t"], mark["rn"]
    out["drain_1m_rate_by_step"] = by_step
    out["scale_backlog"] = sizes.scale_large_backlog
    out["scale_jobs_processed"] = processed
    out["scale_completed"] = completed
    out["rss_before_mb"] = rss_before / 2**20
    out["rss_after_mb"] = rss_after / 2**20
    out["rss_growth_mb"] = (rss_after - rss_before) / 2**20
    out["scale_worker_cpu_us_per_job"] = cpu * 1e6 / processed if processed else None
    await admin.drop(db)
    return out
