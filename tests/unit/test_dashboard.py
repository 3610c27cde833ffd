"""The dashboard's pure parts: the ILIKE escaping, the timeline, durations, the bounded JSON
preview of the job page (no database)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from jobqueue.api.ui._render import JsonPreview, json_preview
from jobqueue.db.queries import like_pattern
from jobqueue.jobs import Attempt, AttemptOutcome, Job, JobStatus
from jobqueue.service.dashboard import format_seconds, timeline

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("plain", "%plain%"),
        ("100%", "%100\\%%"),
        ("a_b", "%a\\_b%"),
        ("back\\slash", "%back\\\\slash%"),
        ("\\%_", "%\\\\\\%\\_%"),
    ],
)
def test_like_pattern_escapes_wildcards_and_escape(text: str, pattern: str) -> None:
    assert like_pattern(text) == pattern


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.0123, "12 ms"), (-1, "0 ms"), (2.5, "2.50 s"), (200, "3 min 20 s"), (7500, "2 h 5 min")],
)
def test_format_seconds_picks_a_readable_unit(seconds: float, text: str) -> None:
    assert format_seconds(seconds) == text


def _job(**changes: object) -> Job:
    values: dict[str, object] = {
        "id": 1, "queue": "default", "task": "fail", "payload": {}, "description": None,
        "status": JobStatus.FAILED, "priority": 0, "attempts": 2, "max_attempts": 2,
        "rescues": 0, "run_at": T0 + timedelta(seconds=5), "created_at": T0,
        "started_at": T0 + timedelta(seconds=6), "finished_at": T0 + timedelta(seconds=7),
        "lease_expires_at": None, "worker_id": "w1", "result": None, "error": "RuntimeError: x",
        "idempotency_key": None, "timeout_seconds": 300.0, "cancel_requested_at": None,
    }  # fmt: skip
    values.update(changes)
    return Job(**values)  # type: ignore[arg-type]


def test_timeline_orders_events_by_time_with_attempt_details() -> None:
    attempts = [
        Attempt(1, "w1", T0 + timedelta(seconds=1), T0 + timedelta(seconds=1.5),
                AttemptOutcome.RETRIED, "RuntimeError", "x", None),
        Attempt(2, "w1", T0 + timedelta(seconds=6), T0 + timedelta(seconds=7),
                AttemptOutcome.FAILED, "RuntimeError", "x", None),
    ]  # fmt: skip
    events = timeline(_job(), attempts)
    assert [e.label for e in events] == [
        "created",
        "attempt 1 started",
        "attempt 1 retried",
        "due to run (run_at)",
        "attempt 2 started",
        "attempt 2 failed",
        "finished: failed",
    ]
    assert events[2].detail == "after 500 ms · RuntimeError: x"
    assert events[1].detail == "worker w1"


def test_timeline_of_cancelled_todo_job_has_cancel_and_no_attempts() -> None:
    job = _job(
        status=JobStatus.CANCELLED,
        attempts=0,
        run_at=T0,
        started_at=None,
        finished_at=T0 + timedelta(seconds=3),
        cancel_requested_at=T0 + timedelta(seconds=3),
        worker_id=None,
    )
    assert [e.kind for e in timeline(job, [])] == [
        "created",
        "due",
        "cancel_requested",
        "finished",
    ]


def test_timeline_of_running_job_has_no_finish() -> None:
    job = _job(status=JobStatus.IN_PROGRESS, attempts=1, run_at=T0, finished_at=None)
    started = T0 + timedelta(seconds=6)
    running = [Attempt(1, "w1", started, None, AttemptOutcome.RUNNING, None, None, None)]
    assert [e.kind for e in timeline(job, running)] == ["created", "due", "started"]


def test_json_preview_under_limit_is_the_whole_pretty_json() -> None:
    assert json_preview({"a": [1, "é"]}, limit=1000) == JsonPreview(
        '{\n  "a": [\n    1,\n    "é"\n  ]\n}', cut=False
    )


def test_json_preview_over_limit_is_cut_on_a_character_boundary() -> None:
    # '{\n  "a": "' is 10 bytes; the 11th is the first of the 3 bytes of "€": left out whole.
    assert json_preview({"a": "€€€"}, limit=11) == JsonPreview('{\n  "a": "', cut=True)


def test_json_preview_of_a_million_items_keeps_the_first_limit_bytes() -> None:
    value = list(range(1_000_000))
    assert json_preview(value, limit=100) == JsonPreview(json.dumps(value, indent=2)[:100], True)
