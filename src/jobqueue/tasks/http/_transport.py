"""Sending one request to a checked address and turning the answer into a result or a signal
(the rules are in :mod:`jobqueue.tasks.http`)."""

from __future__ import annotations

import asyncio
import codecs
import email.utils
import re
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from jobqueue.errors import Discard, RetryLater
from jobqueue.tasks.http._config import HttpTaskConfig, default_transport
from jobqueue.tasks.http._decoding import (
    IDENTITY,
    CodingError,
    CorruptBody,
    UnsupportedCoding,
    make_decoder,
    response_coding,
)
from jobqueue.tasks.http._errors import DeliveryError, DeliveryTimeout
from jobqueue.tasks.http._payload import HttpRequest
from jobqueue.tasks.http._targets import resolve_target

MAX_RETRY_AFTER_SECONDS = 3600.0
"""A server's ``Retry-After`` is honoured up to this many seconds."""

ERROR_SNIPPET_BYTES = 512
"""Bytes of a failed answer's body quoted in the job's error."""

CODING_OVERHEAD_BYTES = 65536
"""A compressed body may take this many raw bytes more than its decoded bound (gzip header
fields, deflate block framing) before the reading stops; bytes."""


@dataclass(frozen=True, slots=True)
class Body:
    """A response body read within bounds.

    Attributes:
        data: the decoded bytes, at most the ``limit`` given to :func:`read_body`.
        coding: the content coding undone (``"identity"``, ``"gzip"``, ``"deflate"``, ``"br"``).
        overflow: None when ``data`` is the whole body; else which bound the body passed, e.g.
            ``"65536 bytes after decoding"``.
    """

    data: bytes
    coding: str
    overflow: str | None


def parse_retry_after(
    value: str | None, *, now: datetime | None = None, cap_seconds: float = MAX_RETRY_AFTER_SECONDS
) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (RFC 9110, section 10.2.3).

    Accepts delta-seconds (``"120"``) or an HTTP-date (IMF-fixdate, RFC 850 or asctime forms).
    A date in the past gives 0; every value is capped at ``cap_seconds``.

    Args:
        value: the header's value, or None when absent.
        now: the current time (aware), for tests; defaults to the clock.
        cap_seconds: the largest delay returned, seconds.

    Returns:
        the delay in seconds, or None when the value is absent or not understood.
    """
    if value is None:
        return None
    text = value.strip()
    if re.fullmatch(r"[0-9]+", text):
        # int() refuses more than 4300 digits (ValueError); 13 digits are centuries anyway.
        seconds = float(int(text)) if len(text) <= 12 else cap_seconds
    else:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:  # asctime dates carry no zone; HTTP-dates are always GMT
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(seconds, 0.0), cap_seconds)


async def read_body(response: httpx.Response, limit: int) -> Body:
    """Read ``response``'s body as raw bytes (``aiter_raw``) and undo its content coding,
    keeping at most ``limit`` decoded bytes in memory.

    A plain body stops being read after ``limit`` bytes. A coded body (RFC 9110, section 8.4:
    ``gzip``, ``deflate``, ``br`` when installed) stops being read when it decodes to more than
    ``limit`` bytes, or when its raw bytes pass ``limit`` + :data:`CODING_OVERHEAD_BYTES`. Every
    decoding step is bounded (:mod:`jobqueue.tasks.http._decoding`), so a compression bomb
    costs at most about ``limit`` bytes of memory, whatever it would expand to.

    Args:
        response: a streamed response (``client.send(..., stream=True)``).
        limit: the most decoded bytes kept, bytes (>= 0).

    Returns:
        the body; ``overflow`` says which bound stopped the reading, if one did.

    Raises:
        UnsupportedCoding: two or more stacked codings, or one that is not supported (nothing is
            read).
        CorruptBody: data that is not valid for its coding, or ends early.
    """
    coding = response_coding(response.headers.get_list("content-encoding"))
    decoder = make_decoder(coding)
    raw_limit = limit if decoder is None else limit + CODING_OVERHEAD_BYTES
    out = bytearray()
    raw = 0
    async for chunk in response.aiter_raw():
        raw += len(chunk)
        if decoder is None:
            out += chunk[: limit + 1 - len(out)]
        else:
            out += decoder.decode(chunk, limit + 1 - len(out))
        if len(out) > limit:
            after = "" if decoder is None else " after decoding"
            return Body(bytes(out[:limit]), coding, f"{limit} bytes{after}")
        if raw > raw_limit:
            return Body(bytes(out), coding, f"{raw_limit} bytes before decoding")
    if decoder is not None:
        out += decoder.finish(limit + 1 - len(out))
        if len(out) > limit:
            return Body(bytes(out[:limit]), coding, f"{limit} bytes after decoding")
    return Body(bytes(out), coding, None)


def _text(response: httpx.Response, data: bytes, truncated: bool) -> str:
    try:
        decoder = codecs.getincrementaldecoder(response.charset_encoding or "utf-8")("replace")
    except LookupError:
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
    # A cut body may end inside a character: final=False drops the partial bytes.
    return decoder.decode(data, final=not truncated).replace("\x00", "\ufffd")


async def _snippet(response: httpx.Response) -> str:
    """The start of a failed answer's body, quoted, for the job's error."""
    try:
        body = await read_body(response, ERROR_SNIPPET_BYTES)
    except CodingError as exc:
        return f"(body not shown: {exc})"
    truncated = body.overflow is not None
    return repr(_text(response, body.data, truncated) + ("…" if truncated else ""))


async def outcome(response: httpx.Response, max_bytes: int, started: float) -> dict[str, Any]:
    """The result of a 2xx answer, or the signal for any other (rules in
    :mod:`jobqueue.tasks.http`).

    Args:
        response: the streamed answer; the caller closes it.
        max_bytes: ``max_response_bytes``, the most decoded body bytes kept, bytes.
        started: ``time.perf_counter()`` when the request was sent, seconds.

    Returns:
        ``{"status", "headers", "body", "truncated", "elapsed_ms"}`` for a 2xx answer.

    Raises:
        Discard: 3xx; 4xx other than 408 and 429; a 2xx whose coded body decodes to more than
            ``max_bytes`` bytes, or is in stacked or unsupported codings.
        RetryLater: 408, 429 or 5xx with a ``Retry-After`` (RFC 9110, section 10.2.3).
        DeliveryError: 408, 429 or 5xx without one; a 2xx whose coded body is corrupt.
    """
    status = response.status_code
    request = response.request
    where = f"{request.method} {request.url.scheme}://{request.headers['host']}"
    if 200 <= status < 300:
        try:
            body = await read_body(response, max_bytes)
        except UnsupportedCoding as exc:
            raise Discard(f"{where} answered {status} with {exc}") from None
        except CorruptBody as exc:
            raise DeliveryError(f"{where} answered {status}, but {exc}") from None
        if body.overflow is not None and body.coding != IDENTITY:
            raise Discard(
                f"{where} answered {status}, but the response exceeds {body.overflow} "
                f"(Content-Encoding: {body.coding}); JOBQUEUE_HTTP_MAX_RESPONSE_BYTES is "
                f"{max_bytes}"
            )
        truncated = body.overflow is not None
        return {
            "status": status,
            "headers": dict(response.headers),
            "body": _text(response, body.data, truncated),
            "truncated": truncated,
            "elapsed_ms": round((time.perf_counter() - started) * 1000, 3),
        }
    if 300 <= status < 400:
        location = response.headers.get("location", "(no Location)")
        raise Discard(
            f"{where} answered {status}, a redirect to {location}, which is not "
            "followed: set payload.url to the final address"
        )
    message = f"{where} answered {status} {response.reason_phrase}: {await _snippet(response)}"
    if status in (408, 429) or status >= 500:
        delay = parse_retry_after(response.headers.get("retry-after"))
        if delay is not None:
            raise RetryLater(delay, f"{message}; Retry-After: {delay:g} s")
        raise DeliveryError(message)
    raise Discard(message)


async def send_pinned(
    spec: HttpRequest,
    headers: dict[str, str],
    addresses: list[str],
    config: HttpTaskConfig,
    tls: ssl.SSLContext,
) -> dict[str, Any]:
    """Send ``spec`` to the first of ``addresses`` that accepts a connection (pinned).

    The URL's host is replaced by the address; the ``Host`` header and the TLS server name (SNI,
    and so certificate verification) stay the URL's host. A refused connection sent nothing, so
    the next address is safe to try. The transport comes from ``config.transport_factory`` (one
    per call, closed at the end); redirects are not followed, environment proxies are ignored.

    Args:
        spec: the validated request.
        headers: the headers to send (``Host`` is added).
        addresses: checked addresses of the URL's host (:func:`resolve_target`).
        config: the task's configuration (``max_response_bytes``, ``transport_factory``).
        tls: the TLS context to verify servers with.

    Returns:
        the 2xx result (:func:`outcome`).

    Raises:
        Discard, RetryLater, DeliveryError: see :func:`outcome`; DeliveryError too when
            ``addresses`` is empty.
        httpx.TransportError: the last address's connection error, or a network error.
    """
    host = spec.url.raw_host.decode("ascii")
    headers = {"host": spec.url.netloc.decode("ascii"), **headers}
    where = f"{spec.method} {spec.url.scheme}://{headers['host']}"
    transport = (config.transport_factory or default_transport)(tls)
    async with httpx.AsyncClient(
        transport=transport, trust_env=False, follow_redirects=False, timeout=spec.timeout_seconds
    ) as client:
        for index, address in enumerate(addresses):
            request = client.build_request(
                spec.method,
                spec.url.copy_with(host=address),
                headers=headers,
                content=spec.content,
                extensions={"sni_hostname": host},
            )
            started = time.perf_counter()
            try:
                response = await client.send(request, stream=True)
            except httpx.ConnectError:
                if index + 1 < len(addresses):
                    continue  # nothing was sent: the next address is safe to try
                raise
            try:
                return await outcome(response, config.max_response_bytes, started)
            finally:
                await response.aclose()
    raise DeliveryError(f"{where}: the host resolved to no address")


async def deliver(
    spec: HttpRequest, headers: dict[str, str], config: HttpTaskConfig, tls: ssl.SSLContext
) -> dict[str, Any]:
    """Resolve, check and send ``spec`` within ``spec.timeout_seconds`` (the whole request).

    Returns:
        the 2xx result (shape in :mod:`jobqueue.tasks.http`).

    Raises:
        Discard, RetryLater, DeliveryError, DeliveryTimeout: see :mod:`jobqueue.tasks.http`.
    """
    where = f"{spec.method} {spec.url.scheme}://{spec.url.netloc.decode('ascii')}"
    deadline = asyncio.timeout(spec.timeout_seconds)
    try:
        async with deadline:
            addresses = await resolve_target(
                spec.url.raw_host.decode("ascii"),
                spec.url.port or (443 if spec.url.scheme == "https" else 80),
                allow_private=config.allow_private,
            )
            return await send_pinned(spec, headers, addresses, config, tls)
    except TimeoutError:
        if not deadline.expired():
            raise
        raise DeliveryTimeout(f"{where} timed out after {spec.timeout_seconds:g} s") from None
    except httpx.TimeoutException as exc:
        kind = type(exc).__name__
        raise DeliveryTimeout(f"{where} timed out ({kind}, {spec.timeout_seconds:g} s)") from None
    except httpx.TransportError as exc:
        raise DeliveryError(f"{where} failed: {type(exc).__name__}: {exc}") from None
