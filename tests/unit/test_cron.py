"""Cron expressions and time zones of schedules: parsing, next and last slot, DST."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from jobqueue.service._cron import InvalidSchedule, expression, last_run, next_run, zone


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def test_cron_nickname_daily_is_midnight() -> None:
    assert expression("@daily") == "0 0 * * *"


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("* * * *", "must have five fields"),
        ("0 * * * * *", "must have five fields"),
        ("61 * * * *", "is not valid"),
        ("0 0 31 2 *", "is not valid"),
        ("x" * 101, "longer than 100"),
    ],
)
def test_cron_bad_expression_refused_with_reason(cron: str, message: str) -> None:
    with pytest.raises(InvalidSchedule, match=message):
        expression(cron)


def test_cron_unknown_zone_refused() -> None:
    with pytest.raises(InvalidSchedule, match="not an IANA time zone"):
        zone("Mars/Olympus")
    with pytest.raises(InvalidSchedule):
        zone("../../etc/passwd")


def test_cron_next_run_is_strictly_after() -> None:
    assert next_run("*/5 * * * *", "UTC", utc(2026, 1, 1, 12, 5)) == utc(2026, 1, 1, 12, 10)


def test_cron_last_run_is_at_or_before() -> None:
    assert last_run("*/5 * * * *", "UTC", utc(2026, 1, 1, 12, 5)) == utc(2026, 1, 1, 12, 5)
    assert last_run("*/5 * * * *", "UTC", utc(2026, 1, 1, 12, 9, 59)) == utc(2026, 1, 1, 12, 5)


def test_cron_time_zone_shifts_the_slot() -> None:
    # 09:00 in Paris in winter (CET, UTC+1) is 08:00 UTC.
    assert next_run("0 9 * * *", "Europe/Paris", utc(2026, 1, 10)) == utc(2026, 1, 10, 8)


def test_cron_spring_forward_missing_time_runs_once_after_the_gap() -> None:
    # 2026-03-29 in Paris: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist that day.
    first = next_run("30 2 * * *", "Europe/Paris", utc(2026, 3, 28, 23))
    assert first == utc(2026, 3, 29, 1, 0)  # 03:00 CEST, the first minute after the gap
    assert next_run("30 2 * * *", "Europe/Paris", first) == utc(2026, 3, 30, 0, 30)


def test_cron_fall_back_repeated_time_runs_once_at_its_first_occurrence() -> None:
    # 2026-10-25 in Paris: 03:00 CEST goes back to 02:00 CET; 02:30 happens twice.
    first = next_run("30 2 * * *", "Europe/Paris", utc(2026, 10, 24, 23))
    assert first == utc(2026, 10, 25, 0, 30)  # 02:30 CEST
    assert next_run("30 2 * * *", "Europe/Paris", first) == utc(2026, 10, 26, 1, 30)


@pytest.mark.parametrize("cron", ["*/1000 * * * *", "*/60 * * * *", "0 */24 * * *", "0 0 */32 * *"])
def test_cron_step_larger_than_its_field_refused(cron: str) -> None:
    with pytest.raises(InvalidSchedule, match="larger than its field"):
        expression(cron)


def test_cron_step_within_its_field_accepted() -> None:
    assert expression("*/59 */23 * * *") == "*/59 */23 * * *"
