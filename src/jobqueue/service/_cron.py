"""Cron expressions and time zones for schedules, on cronsim (a maintained parser).

- Five fields (minute hour day-of-month month day-of-week), as in crontab(5), or one of the
  nicknames ``@yearly`` ``@annually`` ``@monthly`` ``@weekly`` ``@daily`` ``@midnight``
  ``@hourly``. Six-field expressions (with seconds) are refused: a slot is a minute.
- Times are computed in the schedule's IANA time zone (``zoneinfo``, with the ``tzdata``
  package as its fallback database) and stored in UTC.
- Daylight saving time is handled as cronsim does, which follows Debian's cron for an
  expression with a fixed minute and hour: a time that does not exist (spring forward) runs at
  the first minute after the gap, once; a time that occurs twice (fall back) runs once, at its
  first occurrence. Expressions with ``*`` in the minute or hour field run on every real
  minute or hour that matches (the repeated hour twice, as two instants). docs/schedules.md
  has an example of each transition.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from cronsim import CronSim, CronSimError

from jobqueue.errors import InvalidJobRequest

MAX_CRON_LENGTH = 100
"""The longest cron expression accepted, in characters."""

NICKNAMES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


class InvalidSchedule(InvalidJobRequest):
    """A schedule's cron expression or time zone cannot be used; the message says why."""


def expression(cron: str) -> str:
    """The five-field expression of ``cron`` (a nickname replaced).

    Raises:
        InvalidSchedule: longer than :data:`MAX_CRON_LENGTH`, not five fields, a field out of
            range, or an expression that never matches.
    """
    if len(cron) > MAX_CRON_LENGTH:
        raise InvalidSchedule(f"cron is longer than {MAX_CRON_LENGTH} characters")
    if not cron.isascii() or not cron.isprintable():
        raise InvalidSchedule(
            f"cron {cron!r} must be printable ASCII: fields separated by spaces, e.g. '0 3 * * *'"
        )
    text = NICKNAMES.get(cron.strip().lower(), cron.strip())
    _check_steps(cron, text)
    if len(text.split()) != 5:
        raise InvalidSchedule(
            f"cron {cron[:MAX_CRON_LENGTH]!r} must have five fields (minute hour day-of-month "
            f"month day-of-week), e.g. '*/5 * * * *', or be one of {', '.join(NICKNAMES)}"
        )
    try:
        next(CronSim(text, datetime(2026, 1, 1, tzinfo=UTC)))
    except CronSimError as exc:
        raise InvalidSchedule(f"cron {cron!r} is not valid: {exc}") from None
    except StopIteration:
        raise InvalidSchedule(f"cron {cron!r} never matches a date") from None
    return text


@functools.cache
def _known_zones() -> frozenset[str]:
    """The IANA zone names of the time zone database (``zoneinfo.available_timezones``: the
    system's, else the ``tzdata`` package's), without the host-dependent ``localtime`` and the
    technical ``posixrules`` and ``Factory``."""
    return frozenset(available_timezones()) - {"localtime", "posixrules", "Factory"}


_FIELD_SPANS = (59, 23, 31, 12, 7)
"""The largest useful step of each field (minute, hour, day of month, month, day of week)."""


def _check_steps(cron: str, text: str) -> None:
    """Refuse a step larger than its field (``*/1000`` would quietly mean "once, at 0")."""
    for field, span in zip(text.split(), _FIELD_SPANS, strict=False):
        for part in field.split(","):
            _, slash, step = part.partition("/")
            if slash and step.isdigit() and int(step) > span:
                raise InvalidSchedule(
                    f"cron {cron[:MAX_CRON_LENGTH]!r}: step /{step[:20]} is larger than its "
                    f"field (at most {span})"
                )


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (e.g. ``Europe/Paris``, ``UTC``): one of the database's zone
    names, so never a folder of it (``Europe``), a file path, or the host's ``localtime``.

    Raises:
        InvalidSchedule: no such zone.
    """
    if name not in _known_zones():
        raise InvalidSchedule(
            f"timezone {name[:64]!r} is not an IANA time zone name, e.g. 'UTC' or 'Europe/Paris'"
        )
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidSchedule(f"timezone {name[:64]!r} cannot be loaded") from None


def next_run(cron: str, timezone: str, after: datetime) -> datetime:
    """The first slot of ``cron`` strictly after ``after``, in UTC.

    Raises:
        InvalidSchedule: a bad expression or zone, or no slot in the next 50 years.
    """
    local = after.astimezone(zone(timezone)).replace(microsecond=0)
    try:
        return next(CronSim(expression(cron), local)).astimezone(UTC)
    except StopIteration:
        raise InvalidSchedule(f"cron {cron!r} has no slot after {after.isoformat()}") from None


def last_run(cron: str, timezone: str, at: datetime) -> datetime | None:
    """The latest slot of ``cron`` at or before ``at``, in UTC (None in the last 50 years).

    Raises:
        InvalidSchedule: a bad expression or zone.
    """
    local = (at.astimezone(zone(timezone)) + timedelta(seconds=1)).replace(microsecond=0)
    try:
        return next(CronSim(expression(cron), local, reverse=True)).astimezone(UTC)
    except StopIteration:
        return None
