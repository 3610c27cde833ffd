"""How one validation error is listed in a 422 (no database): its input dropped, and its
message, ``loc`` and ``ctx`` bounded."""

from __future__ import annotations

import json

from jobqueue.api.errors import (
    MAX_LISTED_ERRORS,
    MAX_LOC_ITEMS,
    MAX_MESSAGE_CHARS,
    bounded_error,
    validation_body,
)


def test_bounded_error_input_is_dropped_and_type_named() -> None:
    error = {"type": "int_type", "loc": ("body", "priority"), "msg": "Input should be a valid "
             "integer", "input": ["x"] * 1000}  # fmt: skip
    assert bounded_error(error) == {
        "type": "int_type",
        "loc": ["body", "priority"],
        "msg": "Input should be a valid integer, not an array",
    }


def test_bounded_error_message_over_300_characters_is_cut_to_300() -> None:
    error = {"type": "value_error", "loc": ("body",), "msg": "m" * 5000}
    msg = bounded_error(error)["msg"]
    assert (len(msg), msg) == (MAX_MESSAGE_CHARS, "m" * 299 + "…")


def test_bounded_error_message_of_300_characters_is_kept() -> None:
    error = {"type": "value_error", "loc": ("body",), "msg": "m" * 300}
    assert bounded_error(error)["msg"] == "m" * 300


def test_bounded_error_loc_deeper_than_10_keeps_9_items_and_an_ellipsis() -> None:
    error = {"type": "missing", "loc": ("body", *range(50)), "msg": "Field required"}
    assert bounded_error(error)["loc"] == ["body", 0, 1, 2, 3, 4, 5, 6, 7, "…"]


def test_bounded_error_loc_of_10_items_is_kept() -> None:
    loc = ("body", *range(MAX_LOC_ITEMS - 1))
    assert bounded_error({"type": "missing", "loc": loc, "msg": "m"})["loc"] == list(loc)


def test_bounded_error_ctx_values_are_json_and_bounded() -> None:
    error = {
        "type": "value_error",
        "loc": ("body",),
        "msg": "Value error, bad",
        "ctx": {"error": ValueError("v" * 500), "le": 100, "gt": float("inf"), "big": 10**5000},
    }
    ctx = bounded_error(error)["ctx"]
    assert ctx == {"error": "v" * 99 + "…", "le": 100, "gt": "inf", "big": "a very large integer"}
    json.dumps(ctx, allow_nan=False)  # what the response does: no NaN, no 5,000-digit integer


def test_validation_body_of_20_errors_lists_them_all_without_a_count() -> None:
    errors = [{"type": "missing", "loc": ("body",), "msg": "Field required"}] * MAX_LISTED_ERRORS
    assert list(validation_body(errors)) == ["detail"]


def test_validation_body_of_4711_errors_lists_20_with_the_count_and_a_note() -> None:
    errors = [{"type": "missing", "loc": ("body", "jobs", i), "msg": "Field required"}
              for i in range(4711)]  # fmt: skip
    body = validation_body(errors)
    assert (len(body["detail"]), body["error_count"]) == (20, 4711)
    assert (
        body["note"] == "only the first 20 of 4711 errors are listed; the other 4691 were left out"
    )
    assert body["detail"][-1]["loc"] == ["body", "jobs", 19]
