"""``check_depth``: payload nesting counted without recursion, brackets in strings ignored."""

from __future__ import annotations

import json
from typing import Any

import pytest

from jobqueue.encoding import check_depth
from jobqueue.errors import InvalidJobRequest


@pytest.mark.parametrize(
    ("value", "depth"),
    [({"a": []}, 2), ({"a": [1, {"b": {}}]}, 4), ([[[]]], 3), ({"a": 1, "b": [[]]}, 3)],
)
def test_check_depth_at_depth_passes_and_one_below_fails(value: Any, depth: int) -> None:
    text = json.dumps(value)
    check_depth(value, text, depth, "payload")
    with pytest.raises(InvalidJobRequest, match=f"more than {depth - 1} levels"):
        check_depth(value, text, depth - 1, "payload")


def test_check_depth_flat_object_is_depth_one() -> None:
    check_depth({"a": 1, "b": "x"}, '{"a": 1, "b": "x"}', 1, "payload")


def test_check_depth_brackets_inside_strings_do_not_count() -> None:
    value = {"text": "[[[[[{{{{{" * 100}
    check_depth(value, json.dumps(value), 1, "payload")


def test_check_depth_100000_levels_fails_without_recursion_error() -> None:
    value: list[Any] = []
    for _ in range(100_000):
        value = [value]
    with pytest.raises(InvalidJobRequest, match="more than 64 levels"):
        check_depth(value, "[" * 100_001, 64, "payload")
