"""``python -m bench`` (``make bench``): jobqueue, pgqueuer, procrastinate, oban and
graphile-worker side by side.

One run, one local PostgreSQL (admin URL from ``BENCH_DATABASE_URL``, default
``postgresql://postgres@127.0.0.1:5432/postgres``), a fresh database per system, per round and
per phase, the systems alternating within each round, the same job counts and concurrency,
no-op jobs. Prints a table (median [min–max] of the rounds, and jobqueue ÷ best peer) and
writes ``bench/results/latest.json``. See ``bench/README.md``.

Environment: ``BENCH_QUICK=1`` (fewer jobs, one round, no scale part), ``BENCH_ROUNDS``,
``BENCH_SCALE=0|1``, ``BENCH_SCALE_JOBS`` (default 1,000,000), ``BENCH_SCALE_BUDGET_SECONDS``
(the scale part's own budget, from its start; default 300), ``BENCH_ONLY=rounds|scale`` (one
part only), ``BENCH_OUTPUT`` (JSON path).

A peer that cannot run here (oban without a Python >= 3.12, graphile-worker without Node.js or
its npm packages) is skipped: the table says so and the JSON has ``"skipped": "<reason>"`` for it.
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
from bench import peers_graphile as gw
from bench import peers_oban as obn
from bench import peers_pgqueuer as pgq
from bench import peers_procrastinate as pcr
from bench.common import DEFAULT_ADMIN_URL, REPO_ROOT, RESULTS_DIR, Admin, Sizes, log, summary

SYSTEMS = [jq.NAME, pgq.NAME, pcr.NAME, obn.NAME, gw.NAME]
PEERS = [pgq.NAME, pcr.NAME, obn.NAME, gw.NAME]
PYTHON_PEERS = [pgq.NAME, pcr.NAME, obn.NAME]
SKIPPABLE = {obn.NAME: obn.Skipped, gw.NAME: gw.Skipped}
"""Peers that are skipped (with the reason) when their runtime or install is missing."""

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
    (
        "drain_1m_last_over_first",
        "drain rate over the big backlog, last 50,000 ÷ first 50,000",
        "{:.2f}",
    ),
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


def best_peer(
    results: dict[str, Any], key: str, higher: bool, peers: list[str] | None = None
) -> tuple[str | None, float | None]:
    """The best median of ``key`` among ``peers`` (default: every peer) that measured it."""
    values = [(p, results[p]["spread"].get(key, {}).get("median")) for p in peers or PEERS]
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


def last_over_first(scale: dict[str, Any] | None) -> tuple[float | None, str | None]:
    """jobqueue's ``drain_1m_last_over_first``: the drain rate over the last 50,000 jobs of the
    big backlog ÷ the rate over its first 50,000, from ``drain_1m_rate_by_step`` (rates per
    50,000 finished jobs, in finishing order); None, with the reason, unless the whole backlog
    was drained."""
    if not scale:
        return None, "the scale part did not run"
    processed, backlog = scale.get("scale_jobs_processed"), scale.get("scale_backlog")
    if scale.get("scale_error"):
        return None, f"the drain stalled after {processed or 0:,} jobs"
    if not scale.get("scale_completed") or processed != backlog:
        return None, f"not fully drained within the budget: {processed or 0:,} of {backlog:,}"
    steps = [s for s in scale.get("drain_1m_rate_by_step") or [] if s.get("jobs_per_s")]
    if len(steps) < 2 or steps[0]["up_to_job"] != 50_000 or steps[-1]["up_to_job"] != processed:
        return None, "no 50,000-job steps from the first job to the last"
    return steps[-1]["jobs_per_s"] / steps[0]["jobs_per_s"], None


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 13's targets, each with the measured value, met (True/False, None when it could not
    be measured) and the text shown."""
    jqs = results[jq.NAME]

    def med(system: str, key: str) -> float | None:
        value = results[system].get(key)
        return value if isinstance(value, int | float) else None

    def ratio(mine: float | None, theirs: float | None) -> float | None:
        return mine / theirs if mine is not None and theirs else None

    rows = []

    def add(name: str, value: float | None, ok: bool | None, shown: str) -> None:
        rows.append({"target": name, "value": value, "met": ok, "shown": shown})

    def add_ratio(name: str, value: float | None, floor: float, versus: str | None) -> None:
        shown = f"{value:.2f}× (vs {versus})" if value is not None else f"– (no {versus} figure)"
        add(name, value, None if value is None else value >= floor, shown)

    drain = med(jq.NAME, "drain_jobs_per_s")
    peer, value = best_peer(results, "drain_jobs_per_s", True, PYTHON_PEERS)
    add_ratio(
        "drain, 1 process, concurrency 50: ≥ 2.0× the best Python peer",
        ratio(drain, value),
        2.0,
        peer or "any Python peer",
    )
    add_ratio(
        "drain, 1 process, concurrency 50: ≥ 1.0× graphile-worker",
        ratio(drain, med(gw.NAME, "drain_jobs_per_s")),
        1.0,
        gw.NAME,
    )

    p99 = med(jq.NAME, "pickup_p99_ms")
    theirs = {p: med(p, "pickup_p99_ms") for p in PEERS}
    measured = {p: v for p, v in theirs.items() if v is not None}
    missing = [p for p, v in theirs.items() if v is None]
    if p99 is None:
        add("pickup latency p99, idle: ≤ 5 ms and ≤ every peer's p99", None, None, "–")
    else:
        ok = p99 <= 5.0 and all(p99 <= v for v in measured.values())
        shown = f"{p99:.2f} ms (peers: " + ", ".join(f"{p} {v:.2f}" for p, v in measured.items())
        shown += ")" + (f"; not measured: {', '.join(missing)}" if missing else "")
        add("pickup latency p99, idle: ≤ 5 ms and ≤ every peer's p99", p99, ok, shown)

    add_ratio(
        "enqueue over HTTP, 32 clients: ≥ 1.0× pgqueuer's concurrent figure",
        ratio(
            med(jq.NAME, "enqueue_concurrent_jobs_per_s"),
            med(pgq.NAME, "enqueue_concurrent_jobs_per_s"),
        ),
        1.0,
        pgq.NAME,
    )
    add_ratio(
        "enqueue over HTTP, one at a time: ≥ 0.6× pgqueuer's single figure",
        ratio(
            med(jq.NAME, "enqueue_single_jobs_per_s"), med(pgq.NAME, "enqueue_single_jobs_per_s")
        ),
        0.6,
        pgq.NAME,
    )
    peer, value = best_peer(results, "enqueue_batch_jobs_per_s", True)
    add_ratio(
        "enqueue over HTTP, batches of 1,000: ≥ 1.0× the best peer's batch figure",
        ratio(med(jq.NAME, "enqueue_batch_jobs_per_s"), value),
        1.0,
        peer or "any peer",
    )

    value = med(jq.NAME, "drain_1m_last_over_first")
    why = jqs.get("drain_1m_last_over_first_missing")
    name = "drain over a 1,000,000-job backlog: last 50,000 ≥ 0.8× first 50,000"
    if value is None:
        add(name, None, None, f"– ({why})")
    else:
        add(name, value, value >= 0.8, f"{value:.2f}×")

    remote = med(jq.NAME, "remote_drain_jobs_per_s")
    add_ratio(
        "remote worker drain: ≥ 0.5× jobqueue's in-process drain",
        ratio(remote, drain),
        0.5,
        "in-process drain",
    )
    t = med(jq.NAME, "transactions_per_job")
    add(
        "transactions per drained job: ≤ 0.05",
        t,
        None if t is None else t <= 0.05,
        f"{t:.3f}" if t is not None else "–",
    )
    return rows


def render(results: dict[str, Any], meta: dict[str, Any]) -> str:
    header = ["metric (median [min–max])", *SYSTEMS, "jobqueue ÷ best peer"]
    table = [header]
    for key, label, higher, fmt in METRICS:
        row = [label]
        for system in SYSTEMS:
            if results[system].get("skipped"):
                row.append("skipped")
            else:
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
        table.append(
            [label, fmt.format(value) if value is not None else "–"] + [""] * len(PEERS) + [""]
        )
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = []
    for i, row in enumerate(table):
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
        if i == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    out = ["", "\n".join(lines), "", "Targets (issue 13):"]
    for t in meta["targets"]:
        status = {True: "met", False: "NOT met", None: "n/a"}[t["met"]]
        out.append(f"  - {t['target']}: {t['shown']} → {status}")
    notes = []
    for system in SYSTEMS:
        if results[system].get("skipped"):
            notes.append(f"  - {system} skipped: {results[system]['skipped']}")
        for r in results[system]["rounds"]:
            for key in ("drain_error", "retried_after", "error"):
                if r.get(key):
                    notes.append(f"  - round {r['round']} {system} {key}: {r[key]}")
    scale_error = (results[jq.NAME].get("scale") or {}).get("scale_error")
    if scale_error:
        notes.append(f"  - jobqueue scale: {scale_error}")
    if notes:
        out += ["", "Problems during the run:", *notes]
    pg = results[pgq.NAME].get("settings", {})
    concurrency = meta["sizes"]["drain_concurrency"]
    out.append("")
    out.append(
        f"pgqueuer best of sweep: batch_size={pg.get('batch_size')}, "
        f"max_concurrent_tasks={pg.get('max_concurrent_tasks') or 'unlimited'}; "
        f"procrastinate: concurrency={concurrency}, pool={concurrency + 1}; "
        f"oban: queue limit {concurrency}, pool 1–10; "
        f"graphile-worker: concurrency={concurrency}, maxPoolSize={concurrency + 1}"
    )
    out.append(
        "jobs drained per round (N): "
        + ", ".join(f"{s} {n:,}" for s, n in meta["drain_jobs_per_system"].items())
    )
    versions = meta["machine"]["packages"]
    out.append(
        f"{meta['mode']} mode, {meta['sizes']['rounds']} round(s), "
        f"wall {meta['wall_seconds']:.0f} s; {meta['machine']['cpu_count']} CPUs, "
        f"PostgreSQL {meta['machine']['postgresql']}, "
        f"Python {meta['machine']['python']}; "
        + ", ".join(
            f"{name} {versions.get(name) or '–'}"
            for name in ("pgqueuer", "procrastinate", "oban", "graphile-worker")
        )
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
    if system == obn.NAME:
        return await obn.run_round(admin, sizes, round_no, sizes.drain_jobs_for(system))
    if system == gw.NAME:
        return await gw.run_round(admin, sizes, round_no, sizes.drain_jobs_for(system))
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


async def prepare_peers(admin: Admin, extra: dict[str, Any]) -> None:
    """Template databases for every peer; oban's venv and graphile-worker's npm packages are
    installed when missing, and a peer that cannot run here is recorded as skipped."""
    await pgq.prepare(admin)
    await pcr.prepare(admin)
    for name, module in ((obn.NAME, obn), (gw.NAME, gw)):
        try:
            extra[name] = await module.prepare(admin)
        except SKIPPABLE[name] as exc:
            log(f"{name}: skipped: {exc}")
            extra[name] = {"skipped": str(exc)}


async def run_rounds(
    admin: Admin, sizes: Sizes, raw: dict[str, list[dict[str, Any]]], extra: dict[str, Any]
) -> None:
    """The pgqueuer sweep, then the rounds, the order of the systems rotating; skipped peers
    are left out of the rotation."""
    await prepare_peers(admin, extra)
    active = [s for s in SYSTEMS if not extra.get(s, {}).get("skipped")]
    log("pgqueuer: sweeping batch_size × max_concurrent_tasks")
    sweep = await pgq.sweep(admin, sizes)
    best = sweep["best"]
    extra[pgq.NAME] = {"sweep": sweep, "settings": best}
    extra[pcr.NAME] = {
        "settings": {"concurrency": sizes.drain_concurrency, "pool": sizes.drain_concurrency + 1}
    }
    for name, settings in (
        (obn.NAME, {"queue_limit": sizes.drain_concurrency, "pool": "1-10 (Oban.create_pool)"}),
        (
            gw.NAME,
            {"concurrency": sizes.drain_concurrency, "maxPoolSize": sizes.drain_concurrency + 1},
        ),
    ):
        if not extra[name].get("skipped"):
            extra[name]["settings"] = settings
    log(
        "pgqueuer sweep: "
        + ", ".join(
            f"{t['batch_size']}/{t['max_concurrent_tasks'] or '∞'}={t['drain_jobs_per_s']:,.0f}"
            for t in sweep["tried"]
        )
    )
    for round_no in range(1, sizes.rounds + 1):
        shift = (round_no - 1) % len(active)
        for system in active[shift:] + active[:shift]:
            t0 = time.monotonic()
            try:
                m = await run_round(admin, sizes, round_no, system, best)
            except Exception as exc:
                if system not in SKIPPABLE:
                    raise
                # A peer run in a child process that fails is reported, not fatal to the run.
                log(f"warning: round {round_no} {system} failed: {exc}")
                m = {"error": str(exc)[:2000]}
                for name in list(admin.created):
                    if name.startswith(f"jqbench_{system.split('-')[0]}_r{round_no}_"):
                        await admin.drop(name)
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


async def run_scale(admin: Admin, sizes: Sizes, extra: dict[str, Any]) -> None:
    """jobqueue's scale part with its own time budget (``scale_budget_seconds`` from its start,
    not a deadline on the whole run): the big drain stops there if the backlog is not done."""
    deadline = time.monotonic() + sizes.scale_budget_seconds
    log(
        f"jobqueue scale: 10k vs {sizes.scale_large_backlog:,} backlog, RSS growth "
        f"(budget {sizes.scale_budget_seconds:.0f} s)"
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
        rounds_ok = [r for r in raw[system] if not r.get("error")]
        medians, spread = aggregate(rounds_ok)
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
    value, missing = last_over_first(scale)
    results[jq.NAME]["drain_1m_last_over_first"] = value
    if missing:
        results[jq.NAME]["drain_1m_last_over_first_missing"] = missing
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
    for system in (obn.NAME, gw.NAME):
        meta["machine"]["packages"].update(results[system].get("versions") or {})
    meta["drain_jobs_per_system"] = {s: sizes.drain_jobs_for(s) for s in SYSTEMS}
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
            await run_scale(admin, sizes, extra)
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
