"""The outcome classifier: one place decides done / retry / failed."""

from __future__ import annotations

import pytest

from jobqueue.backoff import RetryPolicy
from jobqueue.errors import Discard, RetryLater
from jobqueue.jobs import ClaimedJob, JobStatus
from jobqueue.leases import cancelled, failed, succeeded
from jobqueue.leases._outcomes import MAX_RETRY_DELAY_SECONDS

POLICY = RetryPolicy(base_seconds=1.0, max_seconds=10.0)
MIB = 1_048_576


def _job(attempt: int, max_attempts: int = 3) -> ClaimedJob:
    return ClaimedJob(1, "default", "t", {}, attempt, max_attempts, 300.0)


def test_succeeded_json_value_is_done_with_compact_json() -> None:
    outcome = succeeded(_job(1), {"a": [1, "é"]}, POLICY)
    assert (outcome.status, outcome.result_json) == (JobStatus.DONE, '{"a":[1,"é"]}')


@pytest.mark.parametrize("value", [object(), float("nan"), {"a": "\x00"}])
def test_succeeded_non_json_result_fails_attempt(value: object) -> None:
    outcome = succeeded(_job(3), value, POLICY)
    assert outcome.status == JobStatus.FAILED
    assert outcome.error_type is not None
    assert f"{outcome.error_type}: {outcome.error_message}".startswith(
        "TypeError: the task's result is not JSON-serialisable"
    )


def test_succeeded_result_at_limit_is_done() -> None:
    outcome = succeeded(_job(1), {"a": "é" * 10}, POLICY, max_result_bytes=28)  # 8 + 2 * 10
    assert (outcome.status, outcome.result_json) == (JobStatus.DONE, '{"a":"' + "é" * 10 + '"}')


@pytest.mark.parametrize(("attempt", "status"), [(1, JobStatus.TODO), (3, JobStatus.FAILED)])
def test_succeeded_result_over_limit_fails_attempt_naming_size_and_limit(
    attempt: int, status: JobStatus
) -> None:
    outcome = succeeded(_job(attempt), {"a": "é" * 10}, POLICY, max_result_bytes=27)
    assert (outcome.status, outcome.result_json, outcome.error_type) == (
        status,
        None,
        "ResultTooLarge",
    )
    assert outcome.error_message == (
        "the task's result is 28 bytes of JSON; the limit is 27 bytes (JOBQUEUE_MAX_RESULT_BYTES)"
    )


def test_succeeded_default_limit_is_one_mib() -> None:
    assert succeeded(_job(1), "x" * (MIB - 2), POLICY).status == JobStatus.DONE
    assert succeeded(_job(3), "x" * (MIB - 1), POLICY).error_message == (
        "the task's result is 1048577 bytes of JSON; the limit is 1048576 bytes "
        "(JOBQUEUE_MAX_RESULT_BYTES)"
    )


def test_succeeded_lone_surrogate_in_result_fails_attempt() -> None:
    # Not storable text: it must fail this attempt, not the batch write of every outcome.
    outcome = succeeded(_job(3), {"a": "\ud800"}, POLICY)
    assert outcome.status == JobStatus.FAILED
    assert outcome.error_type == "TypeError"
    assert outcome.error_message == (
        "the task's result is not JSON-serialisable: it holds a lone surrogate ('\\ud800'), "
        "which is not Unicode text: decode bytes with a real encoding, not 'surrogateescape'"
    )


def test_failed_with_attempts_left_is_retry_within_backoff() -> None:
    outcome = failed(_job(2), RuntimeError("boom"), POLICY)
    assert outcome.status == JobStatus.TODO
    assert 0.0 <= outcome.retry_delay_seconds <= 2.0
    assert outcome.error_type is not None
    assert f"{outcome.error_type}: {outcome.error_message}".startswith("RuntimeError: boom")


def test_failed_on_last_attempt_is_failed() -> None:
    assert failed(_job(3), RuntimeError("boom"), POLICY).status == JobStatus.FAILED


def test_failed_discard_is_failed_with_attempts_left() -> None:
    assert failed(_job(1), Discard("no"), POLICY).status == JobStatus.FAILED


def test_failed_error_text_has_no_nul_and_is_capped() -> None:
    outcome = failed(_job(3), RuntimeError("a\x00b" + "x" * 10_000), POLICY)
    assert outcome.error_type == "RuntimeError"
    assert outcome.error_message is not None
    assert outcome.traceback is not None
    assert outcome.error_message.startswith("a\ufffdb")
    assert len(outcome.error_message) == 4000
    assert len(outcome.traceback) <= 4000
    assert outcome.traceback.endswith("xxx\n")
    assert "\x00" not in outcome.error_message + outcome.traceback


def test_failed_retry_later_uses_its_delay() -> None:
    outcome = failed(_job(1), RetryLater(42.5, "server busy"), POLICY)
    assert (outcome.status, outcome.retry_delay_seconds) == (JobStatus.TODO, 42.5)
    assert f"{outcome.error_type}: {outcome.error_message}" == "RetryLater: server busy"


def test_failed_retry_later_on_last_attempt_is_failed() -> None:
    assert failed(_job(3), RetryLater(5), POLICY).status == JobStatus.FAILED


def test_cancelled_outcome_is_cancelled_with_reason() -> None:
    outcome = cancelled(_job(1))
    assert (outcome.status, f"{outcome.error_type}: {outcome.error_message}") == (
        JobStatus.CANCELLED,
        "Cancelled: cancelled by request while running",
    )


def test_failed_error_with_lone_surrogate_and_nul_is_cleaned() -> None:
    error = RuntimeError(b"bad \xff byte\x00".decode("utf-8", "surrogateescape"))
    outcome = failed(_job(1), error, POLICY)
    assert outcome.error_message == "bad \ufffd byte\ufffd"
    assert outcome.traceback is not None
    assert "\udcff" not in outcome.traceback


@pytest.mark.parametrize("value", ["\udcff", {"\udcff": 1}, ["ok", "x\udcffy"]])
def test_succeeded_result_with_lone_surrogate_fails_with_a_clear_error(value: object) -> None:
    outcome = succeeded(_job(3), value, POLICY)
    assert (outcome.status, outcome.error_type) == (JobStatus.FAILED, "TypeError")
    assert "lone surrogate" in str(outcome.error_message)


def test_succeeded_result_with_non_string_keys_is_done() -> None:
    outcome = succeeded(_job(1), {1: "a", 2.5: "b"}, POLICY)
    assert (outcome.status, outcome.result_json) == (JobStatus.DONE, '{"1":"a","2.5":"b"}')


@pytest.mark.parametrize("delay", [float("inf"), 1e300, 10**12])
def test_failed_retry_later_beyond_ten_years_is_clamped(delay: float) -> None:
    outcome = failed(_job(1), RetryLater(delay), POLICY)
    assert outcome.status == JobStatus.TODO
    assert outcome.retry_delay_seconds == MAX_RETRY_DELAY_SECONDS


def test_retry_later_nan_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^RetryLater needs a number of seconds; got NaN$"):
        RetryLater(float("nan"))


def _nested(levels: int) -> list[object]:
    value: list[object] = []
    for _ in range(levels - 1):
        value = [value]
    return value


def test_succeeded_result_at_depth_limit_is_done() -> None:
    outcome = succeeded(_job(1), {"a": _nested(63)}, POLICY, max_result_depth=64)
    assert outcome.status == JobStatus.DONE
    assert outcome.result_json == '{"a":' + "[" * 63 + "]" * 63 + "}"


def test_succeeded_result_over_depth_limit_fails_attempt() -> None:
    outcome = succeeded(_job(3), {"a": _nested(64)}, POLICY, max_result_depth=64)
    assert (outcome.status, outcome.result_json) == (JobStatus.FAILED, None)
    assert (outcome.error_type, outcome.error_message) == (
        "ResultTooDeep",
        "the task's result nests more than 64 levels of objects and arrays "
        "(JOBQUEUE_MAX_PAYLOAD_DEPTH bounds results too): flatten it",
    )


def test_succeeded_none_is_json_null() -> None:
    assert succeeded(_job(1), None, POLICY).result_json == "null"
