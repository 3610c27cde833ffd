"""Parsing and validating an ``http`` job's payload (shape in :mod:`jobqueue.tasks.http`)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from jobqueue.errors import Discard

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""Methods the payload may name (CONNECT and TRACE are refused)."""

PAYLOAD_KEYS = frozenset({"url", "method", "headers", "body", "timeout_seconds"})
"""The keys an ``http`` payload may have; any other key is refused as a likely typo."""

MAX_HEADERS = 100
"""Most headers ``payload.headers`` may hold."""

MAX_HEADER_NAME_BYTES = 256
"""Longest header name in ``payload.headers``, bytes."""

MAX_HEADER_VALUE_BYTES = 8192
"""Longest header value in ``payload.headers``, bytes (values are ASCII: one byte a character)."""

MAX_HEADERS_TOTAL_BYTES = 65536
"""Most bytes of all names and values of ``payload.headers`` together."""

FORBIDDEN_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "accept-encoding"}
)
"""Headers the payload may not set: derived from the url and body, or (``accept-encoding``) set
by the task itself, which decodes at most one content coding of its own choosing."""

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110, section 5.6.2
# RFC 9110, section 5.5: field-value = *field-content, where field-content is field-vchars with
# single SP / HTAB runs inside (no leading or trailing whitespace). obs-text (0x80-0xFF) is refused
# as well: httpx would fail to encode it when the job runs.
_FIELD_VALUE = re.compile(r"(?:[\x21-\x7e](?:[\x21-\x7e \t]*[\x21-\x7e])?)?")


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """A validated payload: what one attempt sends.

    Attributes:
        url: the target, http or https, with a host, a port in 1-65535 or none, no userinfo.
        method: upper case, one of :data:`METHODS`.
        headers: the payload's headers, as given (names are checked case-insensitively).
        content: the body's bytes (empty when the payload has no body).
        timeout_seconds: the whole request's time limit, seconds (> 0).
    """

    url: httpx.URL
    method: str
    headers: dict[str, str]
    content: bytes
    timeout_seconds: float


def _field_value_problem(value: str) -> str | None:
    """What makes ``value`` an invalid RFC 9110 field value, or None. Never quotes the value
    (it may be a credential): only the offending character and its index."""
    if len(value) > MAX_HEADER_VALUE_BYTES:
        return f"its value is {len(value)} characters long; at most {MAX_HEADER_VALUE_BYTES}"
    if _FIELD_VALUE.fullmatch(value):
        return None
    if value[0] in " \t" or value[-1] in " \t":
        return "its value starts or ends with whitespace"
    index, char = next(
        (i, c) for i, c in enumerate(value) if not ("\x20" <= c <= "\x7e" or c == "\t")
    )
    kind = (
        "a control character" if ord(char) < 0x20 or ord(char) == 0x7F else "a non-ASCII character"
    )
    return f"its value holds {kind}, U+{ord(char):04X}, at index {index}"


def check_headers(headers: Any) -> dict[str, str]:
    """Validate ``payload.headers``: an object of at most :data:`MAX_HEADERS` string pairs.

    Names are RFC 9110 tokens (section 5.6.2) of at most :data:`MAX_HEADER_NAME_BYTES` bytes, each
    name at most once (case-insensitively), none of :data:`FORBIDDEN_HEADERS`. Values are RFC 9110
    field values (section 5.5) of at most :data:`MAX_HEADER_VALUE_BYTES` bytes: visible ASCII
    (0x21-0x7E) with spaces and tabs inside, no leading or trailing whitespace, no CR, LF, NUL
    or other control character, no non-ASCII character (RFC 9110's obs-text is refused too: the
    HTTP client cannot send it). Names and values together: at most
    :data:`MAX_HEADERS_TOTAL_BYTES` bytes.

    Returns:
        a copy of ``headers``.

    Raises:
        Discard: what to fix, naming the header (never quoting its value).
    """
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise Discard('payload.headers must be an object of strings, e.g. {"x-kind": "a"}')
    if len(headers) > MAX_HEADERS:
        raise Discard(f"payload.headers has {len(headers)} headers; at most {MAX_HEADERS}")
    seen: dict[str, str] = {}
    total = 0
    for name, value in headers.items():
        if not _TOKEN.fullmatch(name) or len(name) > MAX_HEADER_NAME_BYTES:
            raise Discard(
                f"payload.headers has an invalid header name {name[:64]!r}: names are RFC 9110 "
                "tokens (letters, digits and !#$%&'*+-.^_`|~, RFC 9110 section 5.6.2) of at most "
                f"{MAX_HEADER_NAME_BYTES} characters"
            )
        lower = name.lower()
        if lower in FORBIDDEN_HEADERS:
            raise Discard(
                f"payload.headers must not set {name!r}: "
                + (
                    "the task sends its own (it decodes at most one content coding)"
                    if lower == "accept-encoding"
                    else "it is derived from url and body"
                )
            )
        if lower in seen:
            raise Discard(
                f"payload.headers names {seen[lower]!r} and {name!r}: header names are "
                "case-insensitive, give each once"
            )
        seen[lower] = name
        problem = _field_value_problem(value)
        if problem is not None:
            raise Discard(
                f"payload.headers has an invalid header {name!r}: {problem} (RFC 9110, section "
                "5.5: visible ASCII, with spaces and tabs only inside)"
            )
        total += len(name) + len(value)
    if total > MAX_HEADERS_TOTAL_BYTES:
        raise Discard(
            f"payload.headers holds {total} bytes of names and values; "
            f"at most {MAX_HEADERS_TOTAL_BYTES}"
        )
    return dict(headers)


def check_url(raw_url: Any) -> httpx.URL:
    """Parse ``payload.url``: an http or https URL (RFC 9110, section 4.2) with a non-empty host,
    no userinfo (``user:password@``) and a port in 1-65535 when one is given.

    Raises:
        Discard: what to fix. The message quotes the URL only when its scheme is wrong; never a
            password.
    """
    if not isinstance(raw_url, str) or not raw_url:
        raise Discard('payload.url is required: a string such as "https://example.com/hook"')
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in raw_url):
        # RFC 3986 section 2: a URI holds no space or control character (percent-encode them).
        raise Discard("payload.url contains a space or control character: percent-encode it")
    try:
        url = httpx.URL(raw_url)
    except httpx.InvalidURL as exc:
        raise Discard(f"payload.url is not a valid URL: {exc}") from None
    if url.scheme not in ("http", "https") or not url.raw_host.strip(b"."):
        raise Discard(
            f"payload.url must be an http:// or https:// URL with a host, got {raw_url!r}"
            if not url.userinfo
            else "payload.url must be an http:// or https:// URL with a host"
        )
    if url.userinfo:
        raise Discard(
            "payload.url must not hold credentials (user:password@host): send them in "
            'payload.headers instead, e.g. {"authorization": "Basic …"}'
        )
    if url.port is not None and not 1 <= url.port <= 65535:
        raise Discard(f"payload.url has port {url.port}: a port is 1 to 65535")
    _check_host_name(url.raw_host)
    return url


def _check_host_name(host: bytes) -> None:
    """Refuse a host name DNS cannot hold (RFC 1035, section 2.3.4: labels of 1 to 63 bytes, at
    most 253 in all), which would fail every attempt at run time; IP literals pass.

    Raises:
        Discard: what is wrong with the name.
    """
    if host.startswith(b"[") or host.replace(b".", b"").isdigit():
        return
    labels = host.rstrip(b".").split(b".")
    if len(host.rstrip(b".")) > 253 or any(not 1 <= len(label) <= 63 for label in labels):
        raise Discard(
            "payload.url has a host name DNS cannot hold: each dot-separated label must be 1 to "
            "63 characters and the whole name at most 253"
        )


def _encode_body(payload: Mapping[str, Any], headers: dict[str, str]) -> bytes:
    if "body" not in payload:
        return b""
    body = payload["body"]
    if isinstance(body, str):
        return body.encode("utf-8")
    if not any(name.lower() == "content-type" for name in headers):
        headers["content-type"] = "application/json"
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.encode("utf-8")


def parse_payload(payload: Mapping[str, Any], default_timeout_seconds: float) -> HttpRequest:
    """Validate an ``http`` job's payload (shape in :mod:`jobqueue.tasks.http`).

    Args:
        payload: the job's payload, a JSON object.
        default_timeout_seconds: the timeout when the payload names none, seconds.

    Raises:
        Discard: what to fix, when the payload cannot describe a request (no url, a scheme other
            than http/https, an empty host, userinfo in the url, a port outside 1-65535, an
            unknown method, headers that are not valid RFC 9110 fields (:func:`check_headers`),
            a timeout that is not a positive number, unknown keys).
    """
    unknown = sorted(set(payload) - PAYLOAD_KEYS)
    if unknown:
        raise Discard(
            f"payload has unknown keys {unknown}; known: {', '.join(sorted(PAYLOAD_KEYS))}"
        )
    url = check_url(payload.get("url"))
    method = payload.get("method", "POST")
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise Discard(f"payload.method must be one of {', '.join(sorted(METHODS))}, got {method!r}")
    headers = check_headers(payload.get("headers", {}))
    timeout = payload.get("timeout_seconds", default_timeout_seconds)
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not math.isfinite(timeout)
        or timeout <= 0
    ):
        raise Discard(f"payload.timeout_seconds must be a positive number, got {timeout!r}")
    content = _encode_body(payload, headers)
    return HttpRequest(url, method.upper(), headers, content, float(timeout))
