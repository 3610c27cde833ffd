"""Encodings the service applies at its edge (standard library only): JSON that PostgreSQL's
jsonb can store, and opaque pagination cursors."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from typing import Any, TypeVar

from jobqueue.errors import InvalidCursor, InvalidJobRequest
from jobqueue.jobs import find_nul

T = TypeVar("T")

# An escape \u0000 preceded by an even number of backslashes (an odd count would make it the
# text "\\u0000", a backslash followed by "u0000").
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def encode_json(value: Any, what: str) -> str:
    """Encode ``value`` as compact JSON text, refusing what PostgreSQL's jsonb cannot hold.

    Raises:
        InvalidJobRequest: on NaN or Infinity (not JSON, RFC 8259 section 6), a string with
            U+0000, a value JSON cannot encode, or nesting deeper than Python's recursion limit.
    """
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        # json.dumps writes U+0000 as the escape \u0000; walk the value only when one appears.
        nul_path = find_nul(value, what) if _NUL_ESCAPE.search(text) else None
        if nul_path is not None:
            raise InvalidJobRequest(
                f"{nul_path} contains the character U+0000, which PostgreSQL cannot store: "
                "remove it"
            )
        return text
    except RecursionError as exc:
        raise InvalidJobRequest(f"{what} is nested too deeply") from exc
    except (TypeError, ValueError) as exc:
        raise InvalidJobRequest(
            f"{what} is not valid JSON (NaN and Infinity are not): {exc}"
        ) from exc


def nests_deeper(value: Any, text: str, limit: int) -> bool:
    """Whether a JSON value nests more than ``limit`` levels of objects and arrays.

    ``value`` itself is level 1 when it is an object or array (``{}`` has depth 1,
    ``{"a": [1]}`` depth 2); scalars add no level. ``text`` is ``value``'s JSON encoding: a
    value with at most ``limit`` brackets in it cannot be deeper, so the walk (iterative: no
    recursion limit) runs only for the rare value that might be.
    """
    if text.count("{") + text.count("[") <= limit:
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def check_depth(value: Any, text: str, limit: int, what: str) -> None:
    """Refuse a JSON value that nests more than ``limit`` levels of objects and arrays (see
    :func:`nests_deeper`).

    Raises:
        InvalidJobRequest: deeper than ``limit``; the message names the limit.
    """
    if nests_deeper(value, text, limit):
        raise InvalidJobRequest(
            f"{what} nests more than {limit} levels of objects and arrays, the limit "
            f"(JOBQUEUE_MAX_PAYLOAD_DEPTH): flatten it"
        )


def utf8_size(text: str, what: str) -> int:
    """The size of ``text`` in UTF-8, in bytes.

    Raises:
        InvalidJobRequest: ``text`` holds a lone surrogate (e.g. from the JSON escape
            ``\\ud800``), which is not a Unicode character and cannot be stored.
    """
    try:
        return len(text.encode())
    except UnicodeEncodeError as exc:
        raise InvalidJobRequest(
            f"{what} contains a lone surrogate ({exc.object[exc.start : exc.end]!a}), which is "
            "not valid Unicode: send UTF-8 text"
        ) from exc


MAX_ID = 2**63 - 1
"""The largest job id (PostgreSQL bigint)."""


def encode_cursor(last_id: int) -> str:
    """An opaque cursor for the page after the job with ``last_id``."""
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The id a cursor from :func:`encode_cursor` holds.

    Raises:
        InvalidCursor: when the cursor was not made by :func:`encode_cursor`.
    """
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, number = text.partition(":")
        digits = number.isascii() and number.isdigit()  # isdigit() alone admits "²"
        if prefix != "id" or not digits or not 0 < int(number) <= MAX_ID:
            raise InvalidCursor()
        return int(number)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidCursor() from exc


def one_page(rows: list[T], limit: int, key: Callable[[T], int]) -> tuple[list[T], str | None]:
    """The page out of ``rows`` read with ``limit + 1``: the first ``limit`` rows, and the cursor
    of the next page (after the last row's ``key``), None when no row was left over.

    One extra row tells whether another page exists without a ``COUNT``.
    """
    items = rows[:limit]
    return items, encode_cursor(key(items[-1])) if len(rows) > limit else None
