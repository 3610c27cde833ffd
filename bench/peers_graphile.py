"""graphile-worker's runner: graphile-worker 0.16.6 on Node.js (``bench/graphile``: its
``package.json`` and ``package-lock.json``; :func:`ensure_installed` runs ``npm ci`` when
``node_modules`` is missing), driven as a child process (``node bench/graphile/runner.js``), one
process per phase.

Settings, from its documentation: ``run({concurrency: 50, maxPoolSize: 51})`` (it warns that a
pool smaller than the concurrency "may lead to non-optimal performance"; the one more is the
connection its LISTEN holds), the default ``pollInterval`` (2 s) and LISTEN/NOTIFY (its default).
graphile-worker deletes a job once it has completed.

- enqueue: ``addJob`` of ``makeWorkerUtils`` one job per call (single), ``peer_producers``
  concurrent producers sharing one utils whose pool has one connection each (concurrent), one
  call of its bulk SQL function ``graphile_worker.add_jobs`` with every job spec (batch; 0.16 has
  no ``addJobs`` in JavaScript); jobs/s.
- drain: N jobs queued with one ``add_jobs`` call (another process), then ``run`` in a fresh
  process; rate = N / (the last ``job:complete`` event, emitted once ``complete_job`` has
  returned − the first task's first line). Transactions: ``pg_stat_database`` from before the
  worker process connects to after it has exited. CPU: the node process (psutil), from just
  before it connects to after it has stopped, per job, µs.
- pickup: an idle runner and a utils in one process; from the start of ``addJob`` to the
  task's first line, ms.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from typing import Any

from bench.common import REPO_ROOT, Admin, Sizes, connection, log
from bench.peer_process import (
    child_enqueue,
    child_round,
    drain_figures,
    measured_drain,
    run_phase,
)

NAME = "graphile-worker"
TEMPLATE = "jqbench_tpl_graphile"
DIR = REPO_ROOT / "bench" / "graphile"
RUNNER = DIR / "runner.js"


class Skipped(RuntimeError):
    """The peer cannot run on this machine (the reason is the message)."""


def ensure_installed() -> None:
    """``npm ci --no-audit --no-fund`` in ``bench/graphile`` when graphile-worker is not in
    ``node_modules``; raise :class:`Skipped` when ``node``/``npm`` is missing or the install
    fails."""
    if shutil.which("node") is None:
        raise Skipped("no node on PATH (graphile-worker 0.16 needs Node.js >= 14)")
    if (DIR / "node_modules" / "graphile-worker" / "package.json").exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise Skipped("no npm on PATH to install graphile-worker")
    log("graphile-worker: npm ci in bench/graphile")
    out = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"], cwd=DIR, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        tail = (out.stderr or out.stdout).strip().splitlines()[-3:]
        raise Skipped(f"npm ci failed: {' / '.join(tail)}")


def argv() -> list[str]:
    node = shutil.which("node")
    assert node is not None
    return [node, str(RUNNER)]


async def prepare(admin: Admin) -> dict[str, Any]:
    """The npm packages (see :func:`ensure_installed`), then a template database with its
    schema (``runMigrations``); graphile-worker's and Node's versions."""
    ensure_installed()
    await admin.create(TEMPLATE)
    result = await run_phase(argv(), {"phase": "install", "dsn": admin.dsn(TEMPLATE)}, DIR)
    installed = json.loads((DIR / "node_modules" / "pg" / "package.json").read_text())["version"]
    return {
        "versions": {
            "graphile-worker": result["graphile-worker"],
            "node_pg": installed,
            "node": result["node"],
        }
    }


async def enqueue(dsn: str, sizes: Sizes) -> dict[str, Any]:
    """Single, concurrent and batch enqueue rates, in that order, on one database."""
    count = "SELECT count(*) FROM graphile_worker.jobs"
    return await child_enqueue(argv(), DIR, dsn, sizes, name="graphile-worker", count_sql=count)


async def drain(admin: Admin, database: str, jobs: int, concurrency: int) -> dict[str, Any]:
    """Drain ``jobs`` queued no-op jobs with one runner process (see the module docstring)."""
    dsn = admin.dsn(database)
    await run_phase(argv(), {"phase": "fill", "dsn": dsn, "jobs": jobs}, DIR)
    spec = {
        "phase": "drain",
        "dsn": dsn,
        "jobs": jobs,
        "concurrency": concurrency,
        "timeout_seconds": 600,
    }
    done, cpu, transactions = await measured_drain(admin, database, argv(), spec, DIR, 620)
    async with connection(dsn) as c:
        left = await c.fetchval("SELECT count(*) FROM graphile_worker.jobs")
    if left or done["completed"] != jobs or done["failed"]:
        raise RuntimeError(
            f"graphile-worker drain: {done['completed']} completed, {done['failed']} failed "
            f"of {jobs}, {left} left"
        )
    return drain_figures(
        jobs,
        done["first_started_ms"] / 1000.0,
        done["last_completed_ms"] / 1000.0,
        done["returned_ms"] / 1000.0,
        transactions,
        cpu,
    )


async def run_round(admin: Admin, sizes: Sizes, round_no: int, drain_jobs: int) -> dict[str, Any]:
    """One round: enqueue, pickup, drain, each on a fresh database."""
    return await child_round(
        admin,
        sizes,
        name="graphile",
        template=TEMPLATE,
        command=argv(),
        cwd=DIR,
        enqueue=enqueue,
        drain=drain,
        round_no=round_no,
        drain_jobs=drain_jobs,
    )


def main() -> int:
    """``python -m bench.peers_graphile``: install the npm packages (``make bench`` runs this)."""
    try:
        ensure_installed()
    except Skipped as exc:
        print(f"graphile-worker will be skipped: {exc}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
