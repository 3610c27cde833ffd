"""oban's runner: the Python port of Oban (open-source tier, ``oban`` on PyPI, psycopg 3), which
needs Python >= 3.12, so it runs in its own virtual environment (``bench/.venv-oban``, created by
:func:`ensure_venv`) as a child process (``bench/oban_runner.py``), one process per phase.

Settings are oban's defaults as its documentation shows them: ``Oban.create_pool`` (1–10
connections), one queue ``default`` with limit 50 (the benchmark's concurrency), its PostgreSQL
notifier (LISTEN/NOTIFY, an insert wakes the queue), the stager's 1-s interval, leadership on.

- enqueue: ``Oban.enqueue`` one job per call (single), ``peer_producers`` concurrent producers
  sharing one client whose pool has one connection each (concurrent), one ``enqueue_many``
  call (batch); jobs/s.
- drain: N jobs queued with one ``enqueue_many`` (another process), then one ``Oban`` with
  ``queues={"default": 50}`` in a fresh process; rate = N / (last ``completed_at`` in the
  database − the first job's first line). Transactions: ``pg_stat_database`` from before the
  worker process connects to after it has exited. CPU: the worker process (psutil), from just
  before it connects to after it has stopped, per job, µs.
- pickup: an idle ``Oban`` worker and a client instance in one process; from the start of
  ``enqueue`` to ``process``'s first line, ms.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.common import REPO_ROOT, Admin, Sizes, connection, fetch_one, log
from bench.peer_process import (
    child_enqueue,
    child_round,
    drain_figures,
    measured_drain,
    run_phase,
)

NAME = "oban"
TEMPLATE = "jqbench_tpl_oban"
BENCH_DIR = REPO_ROOT / "bench"
VENV = BENCH_DIR / ".venv-oban"
RUNNER = BENCH_DIR / "oban_runner.py"
REQUIREMENTS = [
    "oban==0.7.0",
    "psycopg[binary]==3.3.9",
    "psycopg-pool==3.3.3",
    "uvloop==0.23.0",
]
"""Pinned: oban 0.7.0 is the newest release that installs here (its dependencies as resolved)."""
STAMP = VENV / ".installed"


class Skipped(RuntimeError):
    """The peer cannot run on this machine (the reason is the message)."""


def find_python312() -> str | None:
    """A working Python 3.12 interpreter: ``python3.12`` on PATH, else pyenv's."""
    candidates = []
    found = shutil.which("python3.12")
    if found:
        candidates.append(found)
    candidates += sorted(
        glob.glob(os.path.expanduser("~/.pyenv/versions/3.12*/bin/python3.12")), reverse=True
    )
    for candidate in candidates:
        try:
            out = subprocess.run(
                [candidate, "-c", "import sys; print(sys.version_info[:2] >= (3, 12))"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if out.returncode == 0 and out.stdout.strip() == "True":
            return candidate
    return None


def venv_python() -> Path:
    return VENV / "bin" / "python"


def ensure_venv() -> None:
    """Create ``bench/.venv-oban`` with the pinned requirements unless it is already there;
    raise :class:`Skipped` when there is no Python 3.12 or the install fails."""
    wanted = "\n".join(REQUIREMENTS)
    if venv_python().exists() and STAMP.exists() and STAMP.read_text() == wanted:
        return
    python = find_python312()
    if python is None:
        raise Skipped("no Python >= 3.12 found (python3.12 on PATH or ~/.pyenv/versions/3.12*)")
    log(f"oban: creating {VENV.relative_to(REPO_ROOT)} with {python}")
    steps = [
        [python, "-m", "venv", "--clear", str(VENV)],
        [str(venv_python()), "-m", "pip", "install", "--quiet", *REQUIREMENTS],
    ]
    for step in steps:
        out = subprocess.run(step, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            tail = (out.stderr or out.stdout).strip().splitlines()[-3:]
            raise Skipped(f"{' '.join(step[:4])} failed: {' / '.join(tail)}")
    STAMP.write_text(wanted)


def argv() -> list[str]:
    return [str(venv_python()), str(RUNNER)]


async def prepare(admin: Admin) -> dict[str, Any]:
    """The venv (see :func:`ensure_venv`), then a template database with oban's schema
    (``oban.schema.install``); oban's and Python's versions."""
    ensure_venv()
    await admin.create(TEMPLATE)
    result = await run_phase(argv(), {"phase": "install", "dsn": admin.dsn(TEMPLATE)}, BENCH_DIR)
    return {"versions": {"oban": result["oban"], "oban_python": result["python"]}}


async def enqueue(dsn: str, sizes: Sizes) -> dict[str, Any]:
    """Single, concurrent and batch enqueue rates, in that order, on one database."""
    count = "SELECT count(*) FROM oban_jobs"
    return await child_enqueue(argv(), BENCH_DIR, dsn, sizes, name="oban", count_sql=count)


async def drain(admin: Admin, database: str, jobs: int, concurrency: int) -> dict[str, Any]:
    """Drain ``jobs`` queued no-op jobs with one worker process (see the module docstring)."""
    dsn = admin.dsn(database)
    await run_phase(argv(), {"phase": "fill", "dsn": dsn, "jobs": jobs}, BENCH_DIR)
    spec = {
        "phase": "drain",
        "dsn": dsn,
        "jobs": jobs,
        "concurrency": concurrency,
        "timeout_seconds": 600,
    }
    done, cpu, transactions = await measured_drain(admin, database, argv(), spec, BENCH_DIR, 620)
    async with connection(dsn) as c:
        row = await fetch_one(
            c,
            "SELECT count(*) FILTER (WHERE state = 'completed') AS ok,"
            " extract(epoch FROM max(completed_at))::float8 AS last FROM oban_jobs",
        )
    if row["ok"] != jobs:
        raise RuntimeError(f"oban drain: {row['ok']} completed of {jobs}")
    return drain_figures(
        jobs, done["first_started"], row["last"], done["returned"], transactions, cpu
    )


async def run_round(admin: Admin, sizes: Sizes, round_no: int, drain_jobs: int) -> dict[str, Any]:
    """One round: enqueue, pickup, drain, each on a fresh database."""
    return await child_round(
        admin,
        sizes,
        name="oban",
        template=TEMPLATE,
        command=argv(),
        cwd=BENCH_DIR,
        enqueue=enqueue,
        drain=drain,
        round_no=round_no,
        drain_jobs=drain_jobs,
    )


def main() -> int:
    """``python -m bench.peers_oban``: create the venv (``make bench`` runs this first)."""
    try:
        ensure_venv()
    except Skipped as exc:
        print(f"oban will be skipped: {exc}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
