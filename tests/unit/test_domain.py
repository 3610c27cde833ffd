"""Job statuses, the U+0000 rule, cursors and JSON encoding (no database)."""

from __future__ import annotations

import pytest

from jobqueue.encoding import decode_cursor, encode_cursor, encode_json
from jobqueue.errors import InvalidCursor, InvalidJobRequest
from jobqueue.jobs import JobStatus, find_nul


def test_job_status_is_final_for_done_failed_cancelled_only() -> None:
    assert [s.value for s in JobStatus if s.is_final] == ["done", "failed", "cancelled"]


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ({"a": "ok"}, None),
        ({"a": "x\x00"}, "payload.a"),
        ({"a": [1, {"b": "\x00"}]}, "payload.a[1].b"),
        ({"k\x00": 1}, "payload (a key)"),
        ({"a": "\\u0000"}, None),  # a backslash and "u0000", not the character
    ],
)
def test_find_nul_reports_path_of_first_nul(value: object, path: str | None) -> None:
    assert find_nul(value) == path


@pytest.mark.parametrize("job_id", [1, 42, 2**63 - 1])
def test_cursor_round_trips(job_id: int) -> None:
    assert decode_cursor(encode_cursor(job_id)) == job_id


@pytest.mark.parametrize("cursor", ["", "!!!", "aWQ6", "eDox", "aWQ6LTE"])
def test_decode_cursor_foreign_value_raises_invalid_cursor(cursor: str) -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor(cursor)


def test_encode_json_nan_raises_invalid_request() -> None:
    with pytest.raises(InvalidJobRequest, match="NaN"):
        encode_json({"x": float("nan")}, "payload")


def test_encode_json_deep_nesting_raises_invalid_request() -> None:
    value: dict[str, object] = {}
    for _ in range(5000):
        value = {"a": value}
    with pytest.raises(InvalidJobRequest, match="nested too deeply"):
        encode_json(value, "payload")
