"""``python -m bench`` (``make bench``): jobqueue, pgqueuer and procrastinate side by side.

One run, one local PostgreSQL (admin URL from ``BENCH_DATABASE_URL``, default
``postgresql://postgres@127.0.0.1:5432/postgres``), a fresh database per system, per round and
per phase, the systems alternating within each round, the same job counts and concurrency,
no-op jobs. Prints a table (median [min–max] of the rounds, and jobqueue ÷ best peer) and
writes ``bench/results/latest.json``. See ``bench/README.md``.

Environment: ``BENCH_QUICK=1`` (fewer jobs, one round, no scale part), ``BENCH_ROUNDS``,
``BENCH_SCALE=0|1``, ``BENCH_SCALE_JOBS`` (default 1,000,000), ``BENCH_BUDGET_SECONDS`` (the
scale drain stops when the run reaches it; default 500), ``BENCH_ONLY=rounds|scale`` (one part
only), ``BENCH_OUTPUT`` (JSON path).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import jobqueue_service as jq
from bench import peers_pgqueuer as pgq
from bench import peers_procrastinate as pcr
from bench.common import DEFAULT_ADMIN_URL, REPO_ROOT, RESULTS_DIR, Admin, Sizes, log, summary

SYSTEMS = [jq.NAME, pgq.NAME, pcr.NAME]
PEERS = [pgq.NAME, pcr.NAME]

# (key, label, higher_is_better, format)
METRICS: list[tuple[str, str, bool, str]] = [
    ("drain_jobs_per_s", "drain, jobs/s (N queued, 1 process, concurrency 50)", True, "{:,.0f}"),
    ("enqueue_single_jobs_per_s", "enqueue one at a time, jobs/s", True, "{:,.0f}"),
    (
        "enqueue_concurrent_jobs_per_s",
        "enqueue concurrent, jobs/s (jq 32 HTTP, peers 10)",
        True,
        "{:,.0f}",
    ),
    ("enqueue_batch_jobs_per_s", "enqueue batch, jobs/s (jq 1,000/request)", True, "{:,.0f}"),
    ("pickup_p50_ms", "pickup latency p50, ms (idle worker)", False, "{:.2f}"),
    ("pickup_p99_ms", "pickup latency p99, ms (idle worker)", False, "{:.2f}"),
    ("transactions_per_job", "transactions per drained job", False, "{:.3f}"),
    ("worker_cpu_us_per_job", "worker process CPU per drained job, µs", False, "{:,.0f}"),
]
JQ_ONLY = [
    ("floor_single_requests_per_s", "bare FastAPI floor, one at a time, requests/s", "{:,.0f}"),
    ("floor_concurrent_requests_per_s", "bare FastAPI floor, 32 clients, requests/s", "{:,.0f}"),
    (
        "remote_drain_jobs_per_s",
        "remote drain, jobs/s (1 remote-worker process, concurrency 50)",
        "{:,.0f}",
    ),
    ("remote_worker_cpu_us_per_job", "remote worker process CPU per job, µs", "{:,.0f}"),
    ("drain_1m_over_10k", "drain rate, big backlog ÷ 10k backlog", "{:.2f}"),
    ("rss_growth_mb", "service RSS growth over the big backlog, MB", "{:.1f}"),
]


def machine_info(pg_version: str, pg_full: str) -> dict[str, Any]:
    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import psutil  # type: ignore[import-untyped]

        memory_gb = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:  # pragma: no cover
        memory_gb = None
    versions: dict[str, str | None] = {}
    for package in (
        "jobqueue",
        "pgqueuer",
        "procrastinate",
        "asyncpg",
        "psycopg",
        "uvicorn",
        "fastapi",
        "sqlalchemy",
        "uvloop",
    ):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    commit = None
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gb": memory_gb,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "postgresql": pg_version,
        "postgresql_full": pg_full,
        "packages": versions,
        "commit": commit,
    }


def aggregate(rounds: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Medians per metric, and {metric: {median, min, max, n}} over the rounds."""
    keys = sorted({k for r in rounds for k, v in r.items() if isinstance(v, int | float)})
    spread = {k: summary([r.get(k) for r in rounds]) for k in keys}
    medians = {k: s["median"] for k, s in spread.items()}
    return medians, spread


def best_peer(results: dict[str, Any], key: str, higher: bool) -> tuple[str | None, float | None]:
    values = [(p, results[p]["spread"].get(key, {}).get("median")) for p in PEERS]
    values = [(p, v) for p, v in values if v is not None]
    if not values:
        return None, None
    return (max if higher else min)(values, key=lambda pv: pv[1])


def cell(spread: dict[str, Any] | None, fmt: str) -> str:
    if not spread or spread.get("median") is None:
        return "–"
    text = fmt.format(spread["median"])
    if spread.get("n", 0) > 1:
        text += f" [{fmt.format(spread['min'])}–{fmt.format(spread['max'])}]"
    return text


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each with the measured value and met / not met."""
    jqs, pg = results[jq.NAME], results[pgq.NAME]

    def med(system: dict[str, Any], key: str) -> float | None:
        value = system.get(key)
        return value if isinstance(value, int | float) else None

    def ratio(key: str) -> float | None:
        a, b = med(jqs, key), med(pg, key)
        return a / b if a is not None and b else None

    rows = []

    def add(name: str, value: float | None, ok: bool | None, shown: str) -> None:
        rows.append({"target": name, "value": value, "met": ok, "shown": shown})

    r = ratio("drain_jobs_per_s")
    add("drain ≥ 2× pgqueuer", r, None if r is None else r >= 2.0, f"{r:.2f}×" if r else "–")
    remote, local = med(jqs, "remote_drain_jobs_per_s"), med(jqs, "drain_jobs_per_s")
    r = remote / local if remote is not None and local else None
    add(
        "remote worker drain ≥ 0.5× in-process drain",
        r,
        None if r is None else r >= 0.5,
        f"{r:.2f}×" if r else "–",
    )
    t = med(jqs, "transactions_per_job")
    add(
        "≤ 0.1 transactions per drained job",
        t,
        None if t is None else t <= 0.1,
        f"{t:.3f}" if t is not None else "–",
    )
    p = med(jqs, "pickup_p99_ms")
    add("pickup p99 ≤ 5 ms", p, None if p is None else p <= 5.0, f"{p:.2f} ms" if p else "–")
    r = ratio("enqueue_concurrent_jobs_per_s")
    add(
        "HTTP enqueue (32 clients) ≥ 1.0× pgqueuer concurrent",
        r,
        None if r is None else r >= 1.0,
        f"{r:.2f}×" if r else "–",
    )
    r = ratio("enqueue_batch_jobs_per_s")
    add(
        "HTTP batch enqueue ≥ 1.0× pgqueuer batch",
        r,
        None if r is None else r >= 1.0,
        f"{r:.2f}×" if r else "–",
    )
    scale = jqs.get("scale") or {}
    error = scale.get("scale_error")
    processed = scale.get("scale_jobs_processed")
    s = med(jqs, "drain_1m_over_10k")
    add(
        "drain big backlog ÷ 10k backlog ≥ 0.8",
        s,
        None if s is None else s >= 0.8,
        f"{s:.2f}" if s is not None else "– (not measured)",
    )
    g = med(jqs, "rss_growth_mb")
    if error:
        add(
            f"RSS growth < 50 MB over the big backlog (stalled after {processed or 0:,} jobs)",
            g,
            None,
            f"{g:.1f} MB, not comparable: {error}" if g is not None else f"– ({error})",
        )
    else:
        add(
            f"RSS growth < 50 MB over the big backlog ({processed or 0:,} jobs processed)",
            g,
            None if g is None else g < 50.0,
            f"{g:.1f} MB" if g is not None else "– (not measured)",
        )
    return rows


def render(results: dict[str, Any], meta: dict[str, Any]) -> str:
    header = ["metric (median [min–max])", *SYSTEMS, "jobqueue ÷ best peer"]
    table = [header]
    for key, label, higher, fmt in METRICS:
        row = [label]
        for system in SYSTEMS:
            row.append(cell(results[system]["spread"].get(key), fmt))
        peer, value = best_peer(results, key, higher)
        mine = results[jq.NAME]["spread"].get(key, {}).get("median")
        if peer and value and mine is not None:
            row.append(f"{mine / value:.2f} (vs {peer}){'' if higher else ', lower is better'}")
        else:
            row.append("–")
        table.append(row)
    for key, label, fmt in JQ_ONLY:
        value = results[jq.NAME].get(key)
        table.append([label, fmt.format(value) if value is not None else "–", "", "", ""])
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = []
    for i, row in enumerate(table):
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
        if i == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    out = ["", "\n".join(lines), "", "Targets (issue 4):"]
    for t in meta["targets"]:
        status = {True: "met", False: "NOT met", None: "n/a"}[t["met"]]
        out.append(f"  - {t['target']}: {t['shown']} → {status}")
    notes = []
    for system in SYSTEMS:
        for r in results[system]["rounds"]:
            for key in ("drain_error", "retried_after"):
                if r.get(key):
                    notes.append(f"  - round {r['round']} {system} {key}: {r[key]}")
    scale_error = (results[jq.NAME].get("scale") or {}).get("scale_error")
    if scale_error:
        notes.append(f"  - jobqueue scale: {scale_error}")
    if notes:
        out += ["", "Problems during the run:", *notes]
    pg = results[pgq.NAME].get("settings", {})
    out.append("")
    out.append(
        f"pgqueuer best of sweep: batch_size={pg.get('batch_size')}, "
        f"max_concurrent_tasks={pg.get('max_concurrent_tasks') or 'unlimited'}; "
        f"procrastinate: concurrency={meta['sizes']['drain_concurrency']}, "
        f"pool={meta['sizes']['drain_concurrency'] + 1}"
    )
    out.append(
        f"{meta['mode']} mode, {meta['sizes']['rounds']} round(s), "
        f"wall {meta['wall_seconds']:.0f} s; {meta['machine']['cpu_count']} CPUs, "
        f"PostgreSQL {meta['machine']['postgresql']}, "
        f"Python {meta['machine']['python']}"
    )
    return "\n".join(out)


async def run_round(
    admin: Admin, sizes: Sizes, round_no: int, system: str, best: dict[str, Any]
) -> dict[str, Any]:
    """One round of ``system``; a jobqueue round whose service died (killed from outside, as a
    shared machine may do) is run once more, and the retry is recorded."""
    if system == pgq.NAME:
        return await pgq.run_round(admin, sizes, round_no, best)
    if system == pcr.NAME:
        return await pcr.run_round(admin, sizes, round_no)
    try:
        return await jq.run_round(admin, sizes, round_no)
    except jq.ServiceDied as exc:
        log(f"warning: round {round_no} jobqueue: {exc}; running the round again")
        for name in list(admin.created):
            if name.startswith(f"jqbench_jobqueue_r{round_no}_"):
                await admin.drop(name)
        m = await jq.run_round(admin, sizes, round_no)
        m["retried_after"] = str(exc).splitlines()[0]
        return m


def num(m: dict[str, Any], key: str, fmt: str = "{:,.0f}") -> str:
    value = m.get(key)
    return fmt.format(value) if isinstance(value, int | float) else "–"


async def run_rounds(
    admin: Admin, sizes: Sizes, raw: dict[str, list[dict[str, Any]]], extra: dict[str, Any]
) -> None:
    """The pgqueuer sweep, then the rounds, the order of the systems rotating."""
    await pgq.prepare(admin)
    await pcr.prepare(admin)
    log("pgqueuer: sweeping batch_size × max_concurrent_tasks")
    sweep = await pgq.sweep(admin, sizes)
    best = sweep["best"]
    extra[pgq.NAME] = {"sweep": sweep, "settings": best}
    log(
        "pgqueuer sweep: "
        + ", ".join(
            f"{t['batch_size']}/{t['max_concurrent_tasks'] or '∞'}={t['drain_jobs_per_s']:,.0f}"
            for t in sweep["tried"]
        )
    )
    for round_no in range(1, sizes.rounds + 1):
        shift = (round_no - 1) % len(SYSTEMS)
        for system in SYSTEMS[shift:] + SYSTEMS[:shift]:
            t0 = time.monotonic()
            m = await run_round(admin, sizes, round_no, system, best)
            m["round"] = round_no
            m["seconds"] = time.monotonic() - t0
            raw[system].append(m)
            log(
                f"round {round_no} {system}: drain {num(m, 'drain_jobs_per_s')}/s, "
                f"single {num(m, 'enqueue_single_jobs_per_s')}/s, "
                f"concurrent {num(m, 'enqueue_concurrent_jobs_per_s')}/s, "
                f"batch {num(m, 'enqueue_batch_jobs_per_s')}/s, "
                f"pickup p50/p99 {num(m, 'pickup_p50_ms', '{:.2f}')}/"
                f"{num(m, 'pickup_p99_ms', '{:.2f}')} ms, "
                f"tx/job {num(m, 'transactions_per_job', '{:.3f}')} ({m['seconds']:.0f} s)"
            )


async def run_scale(admin: Admin, sizes: Sizes, started: float, extra: dict[str, Any]) -> None:
    """jobqueue's scale part, stopping its big drain at the run's time budget."""
    deadline = started + sizes.budget_seconds
    log(
        f"jobqueue scale: 10k vs {sizes.scale_large_backlog:,} backlog, RSS growth "
        f"(stops at {sizes.budget_seconds:.0f} s of run time)"
    )
    try:
        scale = await jq.scale(admin, sizes, deadline)
    except jq.ServiceDied as exc:
        log(f"warning: jobqueue scale: {exc}; running it again")
        await admin.drop("jqbench_jobqueue_scale")
        scale = await jq.scale(admin, sizes, max(deadline, time.monotonic() + 60))
        scale["retried_after"] = str(exc).splitlines()[0]
    extra.setdefault(jq.NAME, {})["scale"] = scale
    log(
        f"jobqueue scale: ratio {scale['drain_1m_over_10k']}, RSS growth "
        f"{scale['rss_growth_mb']:.1f} MB over {scale['scale_jobs_processed']:,} jobs"
        + (f" ({scale['scale_error']})" if scale.get("scale_error") else "")
    )


def report(
    sizes: Sizes,
    raw: dict[str, list[dict[str, Any]]],
    extra: dict[str, Any],
    started: float,
    started_at: dt.datetime,
    pg_version: str,
    pg_full: str,
) -> int:
    """Aggregate, write the JSON, print the table."""
    results: dict[str, Any] = {}
    for system in SYSTEMS:
        medians, spread = aggregate(raw[system])
        entry: dict[str, Any] = {k: medians.get(k) for k, _, _, _ in METRICS}
        entry.update(
            {k: v for k, v in medians.items() if k not in entry and k not in ("round", "seconds")}
        )
        entry["spread"] = spread
        entry["rounds"] = raw[system]
        entry.update(extra.get(system, {}))
        results[system] = entry
    scale = results[jq.NAME].get("scale")
    results[jq.NAME]["drain_1m_over_10k"] = scale["drain_1m_over_10k"] if scale else None
    results[jq.NAME]["rss_growth_mb"] = scale["rss_growth_mb"] if scale else None
    ratios = {}
    for key, _, higher, _ in METRICS:
        peer, value = best_peer(results, key, higher)
        mine = results[jq.NAME]["spread"].get(key, {}).get("median")
        ratios[key] = {
            "best_peer": peer,
            "ratio": mine / value if peer and value and mine is not None else None,
        }
    meta: dict[str, Any] = {
        "generated_at": started_at.isoformat(timespec="seconds"),
        "mode": "quick" if sizes.quick else "full",
        "command": "make bench" if not sizes.quick else "BENCH_QUICK=1 make bench",
        "only": os.environ.get("BENCH_ONLY") or None,
        "wall_seconds": time.monotonic() - started,
        "sizes": asdict(sizes),
        "machine": machine_info(pg_version, pg_full),
    }
    meta["targets"] = targets(results)
    document = {**meta, "ratios_jobqueue_over_best_peer": ratios, "systems": results}
    output = Path(os.environ.get("BENCH_OUTPUT", RESULTS_DIR / "latest.json"))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(document, indent=2, default=str) + "\n")
    print(render(results, meta))
    print(f"\nwrote {output}")
    return 0


async def run() -> int:
    sizes = Sizes.from_env()
    admin = Admin(os.environ.get("BENCH_DATABASE_URL", DEFAULT_ADMIN_URL))
    started = time.monotonic()
    started_at = dt.datetime.now(dt.UTC)
    await admin.open()
    raw: dict[str, list[dict[str, Any]]] = {s: [] for s in SYSTEMS}
    extra: dict[str, Any] = {}
    only = os.environ.get("BENCH_ONLY", "").strip()
    try:
        stale = await admin.drop_stale()
        if stale:
            log(f"dropped {len(stale)} stale benchmark database(s)")
        pg_version = str(await admin.c.fetchval("SHOW server_version"))
        pg_full = await admin.server_version()
        log(
            f"{'quick' if sizes.quick else 'full'} mode: {sizes.rounds} round(s), "
            f"drain {sizes.drain_jobs:,} jobs, PostgreSQL {pg_version}"
            + (f", only {only}" if only else "")
        )
        await jq.prepare(admin)
        if only != "scale":
            await run_rounds(admin, sizes, raw, extra)
        if sizes.scale and only != "rounds":
            await run_scale(admin, sizes, started, extra)
    except BaseException:
        traceback.print_exc()
        await admin.drop_all_created()
        await admin.close()
        return 1
    await admin.drop_all_created()
    await admin.close()
    return report(sizes, raw, extra, started, started_at, pg_version, pg_full)


def main() -> int:
    try:
        import uvloop

        return uvloop.run(run())
    except ImportError:  # pragma: no cover - uvicorn[standard] installs uvloop
        return asyncio.run(run())


if __name__ == "__main__":
    sys.exit(main())
