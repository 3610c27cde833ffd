"""``python -m bench.profile``: py-spy profiles of the jobqueue service under the benchmark's loads.

Not part of ``make bench``. Starts ``jobqueue serve`` on a fresh database and records, with
``py-spy record`` (sampling, ``--nonblocking``, so the service runs at full speed):

1. ``drain``: a long drain (``--drain-jobs``, default 100,000 queued no-op jobs, concurrency 50);
2. ``enqueue``: 32 concurrent HTTP clients, one job per request (API-only service);
3. ``enqueue-single``: one HTTP client, one job per request (API-only service);
4. ``enqueue-batch``: one HTTP client, ``POST /jobs/batch`` with 1,000 jobs per request;

each for ``--seconds`` (default 10). Writes the collapsed stacks to
``<--output-dir>/profile-<name>.folded`` (default: a fresh temporary directory; feed them to
flamegraph.pl or speedscope) and the summary to ``bench/results/profile-summary.txt``, and
prints the summary per profile: the busiest leaf frames ("self") and the heaviest frames with their
callees ("total"), as a share of the samples taken while the service's threads were running,
and the service's CPU use (psutil) per job over the same window.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import jobqueue_service as jq
from bench.common import (
    DEFAULT_ADMIN_URL,
    RESULTS_DIR,
    Admin,
    connection,
    process_cpu_seconds,
)

# Frames that sit on every stack (process start-up, uvicorn, the event loop) tell nothing.
BORING = (
    "<module>",
    "_run_module_as_main",
    "_run_code",
    "typer/",
    "click/",
    "_click/",
    "jobqueue/cli.py",
    "uvicorn/main.py",
    "uvicorn/server.py",
    "uvicorn/_compat.py",
    "asyncio/runners.py",
    "threading.py:1002",
    "threading.py:1045",
)


def summarise(path: Path, top: int = 25) -> str:
    """Self and total shares of the frames in a py-spy raw (collapsed) file."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        stack, _, count = line.rpartition(" ")
        n = int(count)
        samples += n
        frames = [f for f in stack.split(";") if f]
        if frames:
            own[frames[-1]] += n
        for frame in set(frames):
            total[frame] += n
    if not samples:
        return "  (no samples)"
    lines = [f"  {samples} samples", "  self (leaf frames):"]
    for frame, n in own.most_common(top):
        lines.append(f"    {100 * n / samples:5.1f}%  {frame}")
    lines.append("  total (frame and its callees):")
    shown = 0
    for frame, n in total.most_common():
        if any(b in frame for b in BORING):
            continue
        lines.append(f"    {100 * n / samples:5.1f}%  {frame}")
        shown += 1
        if shown >= top + 15:
            break
    return "\n".join(lines)


OUTPUT_DIR: list[Path] = []


async def record(pid: int, name: str, seconds: float) -> tuple[Path, asyncio.subprocess.Process]:
    out = OUTPUT_DIR[0] / f"profile-{name}.folded"
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    proc = await asyncio.create_subprocess_exec(
        spy,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(int(seconds)),
        "--rate",
        "200",
        "--nonblocking",
        "--format",
        "raw",
        "--output",
        str(out),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    return out, proc


async def profile_drain(admin: Admin, jobs: int, seconds: float) -> str:
    db = await admin.create("jqbench_profile_drain", jq.TEMPLATE)
    svc = jq.Service(admin.dsn(db), workers=True, concurrency=50)
    await svc.start()
    try:
        async with connection(admin.dsn(db)) as conn:
            await conn.execute(jq._INSERT, jobs, 1.0)
            await asyncio.sleep(1.2)
            cpu0, t0 = process_cpu_seconds(svc.pid), time.monotonic()
            before = await conn.fetchval("SELECT count(*) FROM jobs WHERE status = 'done'")
            out, spy = await record(svc.pid, "drain", seconds)
            _, err = await spy.communicate()
            cpu, wall = process_cpu_seconds(svc.pid) - cpu0, time.monotonic() - t0
            after = await conn.fetchval("SELECT count(*) FROM jobs WHERE status = 'done'")
    finally:
        await svc.stop()
        await admin.drop(db)
    done = after - before
    head = (
        f"drain: {done:,} jobs done in {wall:.1f} s ({done / wall:,.0f}/s) while profiling; "
        f"service CPU {100 * cpu / wall:.0f}% of a core, {cpu * 1e6 / max(done, 1):,.0f} µs/job"
    )
    if done >= jobs:
        head += " (the backlog ran out before the profile ended: raise --drain-jobs)"
    return head + "\n" + summarise(out) + _spy_errors(err)


async def profile_enqueue(admin: Admin, clients: int, seconds: float, name: str) -> str:
    db = await admin.create(f"jqbench_profile_{name.replace('-', '_')}", jq.TEMPLATE)
    svc = jq.Service(admin.dsn(db), workers=False)
    await svc.start()
    try:
        jobs = int(seconds * 4000)  # more than it can do in the window
        phase: dict[str, Any] = (
            {"kind": "concurrent", "jobs": jobs, "clients": clients}
            if clients > 1
            else {"kind": "single", "jobs": jobs}
        )
        if name == "enqueue-batch":
            phase = {"kind": "batch", "jobs": int(seconds * 100_000), "per_request": 1000}
        load = asyncio.create_task(jq.loadgen({"port": svc.port, "phases": [phase]}))
        await asyncio.sleep(1.0)
        async with connection(admin.dsn(db)) as conn:
            before = await conn.fetchval("SELECT count(*) FROM jobs")
            cpu0, t0 = process_cpu_seconds(svc.pid), time.monotonic()
            out, spy = await record(svc.pid, name, seconds)
            _, err = await spy.communicate()
            cpu, wall = process_cpu_seconds(svc.pid) - cpu0, time.monotonic() - t0
            after = await conn.fetchval("SELECT count(*) FROM jobs")
        load.cancel()
    finally:
        await svc.stop()
        await admin.drop(db)
    done = after - before
    head = (
        f"{name} ({clients} HTTP client(s)): {done:,} jobs created in {wall:.1f} s "
        f"({done / wall:,.0f}/s) while profiling; service CPU {100 * cpu / wall:.0f}% of a core, "
        f"{cpu * 1e6 / max(done, 1):,.0f} µs/job"
    )
    return head + "\n" + summarise(out) + _spy_errors(err)


def _spy_errors(err: bytes) -> str:
    text = err.decode(errors="replace").strip()
    lines = [line for line in text.splitlines() if "Errors" in line or "rror:" in line]
    return ("\n  py-spy: " + " / ".join(lines)) if lines else ""


async def main(args: argparse.Namespace) -> None:
    OUTPUT_DIR.append(Path(args.output_dir or tempfile.mkdtemp(prefix="jqbench-profile-")))
    OUTPUT_DIR[0].mkdir(parents=True, exist_ok=True)
    admin = Admin(args.admin_url)
    await admin.open()
    try:
        await jq.prepare(admin)
        reports = []
        if "drain" in args.only:
            reports.append(await profile_drain(admin, args.drain_jobs, args.seconds))
        if "enqueue" in args.only:
            reports.append(await profile_enqueue(admin, 32, args.seconds, "enqueue"))
        if "enqueue-single" in args.only:
            reports.append(await profile_enqueue(admin, 1, args.seconds, "enqueue-single"))
        if "enqueue-batch" in args.only:
            reports.append(await profile_enqueue(admin, 1, args.seconds, "enqueue-batch"))
    finally:
        await admin.drop_all_created()
        await admin.close()
    text = "\n\n".join(reports)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "profile-summary.txt").write_text(text + "\n")
    print(text)
    print(
        f"\ncollapsed stacks in {OUTPUT_DIR[0]}; summary in {RESULTS_DIR / 'profile-summary.txt'}"
    )


if __name__ == "__main__":
    import os

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--drain-jobs", type=int, default=100_000)
    parser.add_argument(
        "--only",
        nargs="*",
        default=["drain", "enqueue", "enqueue-single", "enqueue-batch"],
        help="which profiles: drain, enqueue, enqueue-single, enqueue-batch",
    )
    parser.add_argument(
        "--admin-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_ADMIN_URL)
    )
    parser.add_argument("--output-dir", default=None, help="where the collapsed stacks go")
    asyncio.run(main(parser.parse_args()))
