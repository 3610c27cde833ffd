"""A server killed or stopped with jobs in hand: nothing is lost, nothing runs more than owed."""

from __future__ import annotations

import signal
from pathlib import Path

import asyncpg

from tests.e2e.procs import CLEAN_SIGTERM_EXIT, ServerFactory, read_records
from tests.e2e.support import enqueue_records, rows, wait_all_status, wait_running


async def test_serve_killed_with_jobs_in_progress_reruns_exactly_those_once(
    database_url: str, db: asyncpg.Connection, start_server: ServerFactory, record_file: Path
) -> None:
    env = {
        "JOBQUEUE_DATABASE_URL": database_url,
        "JOBQUEUE_CONCURRENCY": "10",
        "JOBQUEUE_LEASE_SECONDS": "2",
        "JOBQUEUE_RESCUE_INTERVAL_SECONDS": "0.5",
        "JOBQUEUE_SHUTDOWN_GRACE_SECONDS": "1",
    }
    first = await start_server.start(env)
    ids = await enqueue_records(first.url, 30, seconds=1.5)
    await wait_running(db, record_file, 10)

    assert await first.stop(signal.SIGKILL) == -signal.SIGKILL
    killed = {i for i, row in (await rows(db)).items() if row["status"] == "in_progress"}
    assert killed == set(read_records(record_file))
    assert len(killed) == 10

    await start_server.start(env)
    await wait_all_status(db, "done", 30, timeout=30)

    final = await rows(db)
    runs = read_records(record_file)
    assert sorted(final) == ids
    assert {i: r["status"] for i, r in final.items()} == dict.fromkeys(ids, "done")
    assert runs == {i: [1, 2] if i in killed else [1] for i in ids}
    assert {i: r["attempts"] for i, r in final.items()} == {i: 2 if i in killed else 1 for i in ids}
    assert {i for i, r in final.items() if r["rescues"] == 1} == killed
    assert {i: r["rescues"] for i, r in final.items() if i not in killed} == dict.fromkeys(
        set(ids) - killed, 0
    )


async def test_serve_sigterm_after_short_grace_releases_running_jobs_to_todo(
    database_url: str, db: asyncpg.Connection, start_server: ServerFactory, record_file: Path
) -> None:
    server = await start_server.start(
        {
            "JOBQUEUE_DATABASE_URL": database_url,
            "JOBQUEUE_CONCURRENCY": "10",
            "JOBQUEUE_SHUTDOWN_GRACE_SECONDS": "0.5",
        }
    )
    ids = await enqueue_records(server.url, 20, seconds=30)
    await wait_running(db, record_file, 10)

    assert await server.stop(signal.SIGTERM, timeout=15) == CLEAN_SIGTERM_EXIT

    final = await rows(db)
    assert len(read_records(record_file)) == 10
    assert sorted(final) == ids
    assert {i: (r["status"], r["attempts"], r["worker_id"]) for i, r in final.items()} == (
        dict.fromkeys(ids, ("todo", 0, None))
    )


async def test_serve_sigterm_within_grace_finishes_running_jobs_and_leaves_rest_todo(
    database_url: str, db: asyncpg.Connection, start_server: ServerFactory, record_file: Path
) -> None:
    server = await start_server.start(
        {
            "JOBQUEUE_DATABASE_URL": database_url,
            "JOBQUEUE_CONCURRENCY": "10",
            "JOBQUEUE_SHUTDOWN_GRACE_SECONDS": "10",
        }
    )
    ids = await enqueue_records(server.url, 20, seconds=0.5)
    await wait_running(db, record_file, 10)

    assert await server.stop(signal.SIGTERM, timeout=15) == CLEAN_SIGTERM_EXIT

    final = await rows(db)
    started = set(read_records(record_file))
    assert len(started) == 10
    assert read_records(record_file) == {i: [1] for i in started}
    assert sorted(final) == ids
    assert {i: (r["status"], r["attempts"], r["worker_id"] is None) for i, r in final.items()} == {
        i: ("done", 1, False) if i in started else ("todo", 0, True) for i in ids
    }
    # Each outcome was written once: a flush racing the completer loop would log lease_lost.
    assert "lease_lost" not in server.log_path.read_text()
