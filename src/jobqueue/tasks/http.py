"""The built-in ``http`` task: deliver one HTTP request per attempt (webhook delivery).

Payload (a JSON object; unknown keys are refused so that a typo is not silently ignored)::

    {"url": "https://hooks.example.com/in",   # required, http or https
     "method": "POST",                          # GET HEAD POST PUT PATCH DELETE OPTIONS
     "headers": {"x-kind": "order.paid"},       # str -> str
     "body": {"id": 7},                         # a string is sent as-is (UTF-8); any other JSON
                                                # value is JSON-encoded with application/json
     "timeout_seconds": 10}                     # whole request, seconds (default from config)

Result of a 2xx answer: ``{"status": int, "headers": {name: value}, "body": str,
"truncated": bool, "elapsed_ms": float}``; ``body`` is the decoded text of at most
``max_response_bytes`` bytes, read as a stream that stops at the cap.

How an answer becomes the job's next state (see :mod:`jobqueue.worker.outcome`):

- 2xx: done.
- 408, 429, 5xx, network errors, timeouts, DNS failures: retried. With a ``Retry-After`` header
  (RFC 9110, section 10.2.3: delta-seconds or an HTTP-date), :class:`RetryLater` waits that long
  (at most :data:`MAX_RETRY_AFTER_SECONDS`); otherwise :class:`DeliveryError` takes the normal
  backoff. 408 is retried because RFC 9110 section 15.5.9 lets the client repeat the request.
- 3xx: :class:`Discard`. Redirects are never followed: the target would escape the host allow-list
  and the address checks, and a signed body would go to a host the job did not name (the
  receiver should publish its final URL instead).
- other 4xx and bad payloads: :class:`Discard` (retrying cannot help).

Signing follows the Standard Webhooks spec (https://www.standardwebhooks.com/): ``webhook-id`` is
``job_<id>`` (the same for every attempt, so receivers can drop duplicates), ``webhook-timestamp``
is the send time in integer unix seconds, ``webhook-signature`` is ``v1,`` + base64 of
HMAC-SHA256 over ``"{id}.{timestamp}.{body}"``. A ``whsec_<base64>`` secret is base64-decoded to
the key; any other secret is used as UTF-8 bytes.

Target policy, against server-side request forgery: the URL's host must match one of
``allowed_hosts`` (``fnmatch``, case-insensitive; ``*.example.com`` does not match
``example.com``), and unless ``allow_private`` every address the host resolves to must be public
(:func:`classify_address`). DNS rebinding is closed by pinning: the request is sent to an address
that was checked (the URL's host is replaced by that address), with the ``Host`` header and the
TLS server name (SNI, and so certificate verification) still the original host name. Each
delivery uses its own connection (no pool shared across hosts, so a TLS connection verified for
one name is never reused for another on the same address); only the TLS context is shared.
Environment proxies (``HTTP_PROXY`` …) and ``.netrc`` are ignored, since a proxy would undo the
pinning. Error messages name the method, scheme and host only: paths and queries of webhook URLs
often carry secrets, and the first line of an error is logged.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import codecs
import email.utils
import fnmatch
import hashlib
import hmac
import ipaddress
import json
import math
import re
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from jobqueue.errors import ConfigurationError, Discard, RetryLater
from jobqueue.tasks.registry import JobContext

MAX_RETRY_AFTER_SECONDS = 3600.0
"""A server's ``Retry-After`` is honoured up to this many seconds."""

ERROR_SNIPPET_BYTES = 512
"""Bytes of a failed answer's body quoted in the job's error."""

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""Methods the payload may name (CONNECT and TRACE are refused)."""

PAYLOAD_KEYS = frozenset({"url", "method", "headers", "body", "timeout_seconds"})
"""The keys an ``http`` payload may have; any other key is refused as a likely typo."""

_FORBIDDEN_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110, section 5.6.2
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052 well-known prefix
_USER_AGENT = "jobqueue-http/1"


class DeliveryError(Exception):
    """A delivery that may succeed later (5xx, 429, network error): the normal backoff applies."""


class DeliveryTimeout(DeliveryError, TimeoutError):
    """The request did not finish within its ``timeout_seconds``; retried like any DeliveryError."""


@dataclass(frozen=True)
class HttpTaskConfig:
    """Settings of the ``http`` task (the lead builds it from ``JOBQUEUE_HTTP_*``).

    Attributes:
        signing_secret: Standard Webhooks secret (``JOBQUEUE_HTTP_SIGNING_SECRET``); ``whsec_``
            + base64, or any other string used as UTF-8. None or empty: requests are not signed.
        allowed_hosts: ``fnmatch`` host patterns (``JOBQUEUE_HTTP_ALLOWED_HOSTS``), e.g.
            ``("*.example.com",)``; ``("*",)`` allows every host.
        allow_private: let requests reach private, loopback, link-local … addresses
            (``JOBQUEUE_HTTP_ALLOW_PRIVATE``).
        max_response_bytes: most bytes of a 2xx body kept in the result.
        default_timeout_seconds: whole-request timeout when the payload names none, seconds.
    """

    signing_secret: str | None = field(default=None, repr=False)  # a secret: never in logs
    allowed_hosts: tuple[str, ...] = ("*",)
    allow_private: bool = False
    max_response_bytes: int = 65536
    default_timeout_seconds: float = 30.0


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """A validated payload: what one attempt sends. ``content`` is the body's bytes."""

    url: httpx.URL
    method: str
    headers: dict[str, str]
    content: bytes
    timeout_seconds: float


def parse_host_patterns(value: str) -> tuple[str, ...]:
    """Split ``JOBQUEUE_HTTP_ALLOWED_HOSTS`` (comma-separated) into patterns, blanks dropped."""
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _check_headers(headers: Any) -> dict[str, str]:
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise Discard('payload.headers must be an object of strings, e.g. {"x-kind": "a"}')
    for name, value in headers.items():
        if not _TOKEN.fullmatch(name) or any(c in value for c in "\r\n\x00"):
            raise Discard(
                f"payload.headers has an invalid header {name!r}: names are RFC 9110 "
                "tokens and values hold no CR, LF or NUL"
            )
        if name.lower() in _FORBIDDEN_HEADERS:
            raise Discard(f"payload.headers must not set {name!r}: it is derived from url and body")
    return dict(headers)


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
    """Validate an ``http`` job's payload (shape in the module docstring).

    Raises:
        Discard: what to fix, when the payload cannot describe a request (no url, a scheme other
            than http/https, an unknown method, headers that are not str to str, a timeout that
            is not a positive number, unknown keys).
    """
    unknown = sorted(set(payload) - PAYLOAD_KEYS)
    if unknown:
        raise Discard(
            f"payload has unknown keys {unknown}; known: {', '.join(sorted(PAYLOAD_KEYS))}"
        )
    raw_url = payload.get("url")
    if not isinstance(raw_url, str) or not raw_url:
        raise Discard('payload.url is required: a string such as "https://example.com/hook"')
    try:
        url = httpx.URL(raw_url)
    except httpx.InvalidURL as exc:
        raise Discard(f"payload.url is not a valid URL: {exc}") from None
    if url.scheme not in ("http", "https") or not url.raw_host:
        raise Discard(
            f"payload.url must be an http:// or https:// URL with a host, got {raw_url!r}"
        )
    method = payload.get("method", "POST")
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise Discard(f"payload.method must be one of {', '.join(sorted(METHODS))}, got {method!r}")
    headers = _check_headers(payload.get("headers", {}))
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


def signing_key(secret: str) -> bytes:
    """The HMAC key for ``secret``: ``whsec_<base64>`` decoded (Standard Webhooks), else UTF-8.

    Raises:
        ConfigurationError: when a ``whsec_`` secret is not valid base64.
    """
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        except binascii.Error:
            raise ConfigurationError(
                "JOBQUEUE_HTTP_SIGNING_SECRET starts with whsec_ but the rest is not base64"
            ) from None
    return secret.encode("utf-8")


def sign(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``"v1," + base64(HMAC-SHA256(key, id.timestamp.body))``.

    Args:
        key: the HMAC key (see :func:`signing_key`).
        message_id: the ``webhook-id`` value.
        timestamp: the ``webhook-timestamp`` value, unix seconds.
        body: the exact bytes sent as the request body.
    """
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


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
        seconds = float(int(text))
    else:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:  # asctime dates carry no zone; HTTP-dates are always GMT
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(seconds, 0.0), cap_seconds)


def classify_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why ``address`` may not be called without ``allow_private``, or None when it is public.

    IPv4-mapped (``::ffff:a.b.c.d``), 6to4 (``2002::/16``) and NAT64 (``64:ff9b::/96``, RFC 6052)
    addresses are judged by the IPv4 address they carry.

    Returns:
        e.g. ``"a loopback address"``, ``"a private address in IPv4-mapped form"``, or None.
    """
    if isinstance(address, ipaddress.IPv6Address):
        forms = (
            ("IPv4-mapped", address.ipv4_mapped),
            ("6to4", address.sixtofour),
            (
                "NAT64",
                ipaddress.IPv4Address(int(address) & 0xFFFFFFFF) if address in _NAT64 else None,
            ),
        )
        for form, embedded in forms:
            if embedded is not None:
                reason = classify_address(embedded)
                return None if reason is None else f"{reason} in {form} form"
    checks = (
        (address.is_unspecified, "an unspecified address"),
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address.is_private, "a private address"),
        (address.is_reserved, "a reserved address"),
        (
            isinstance(address, ipaddress.IPv6Address) and address.is_site_local,
            "a site-local address",
        ),
        (not address.is_global, "a non-public address"),
    )
    return next((reason for flagged, reason in checks if flagged), None)


def host_allowed(host: str, patterns: Iterable[str]) -> bool:
    """Whether ``host`` matches one of ``patterns`` (``fnmatch``, case-insensitive, a trailing
    dot ignored)."""
    name = host.rstrip(".").lower()
    return any(fnmatch.fnmatchcase(name, p.strip().rstrip(".").lower()) for p in patterns)


async def resolve_target(host: str, port: int, *, allow_private: bool) -> list[str]:
    """The addresses ``host`` resolves to (``loop.getaddrinfo``), in the resolver's order.

    Raises:
        Discard: unless ``allow_private``, when any address is not public (see
            :func:`classify_address`); one bad address refuses the host.
        DeliveryError: when the name does not resolve (retried: DNS failures are often brief).
    """
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise DeliveryError(f"cannot resolve {host}: {exc.strerror}") from None
    addresses = list(dict.fromkeys(str(info[4][0]).partition("%")[0] for info in infos))
    if not allow_private:
        for address in addresses:
            reason = classify_address(ipaddress.ip_address(address))
            if reason is not None:
                raise Discard(
                    f"refused: {host} resolves to {address}, {reason}; "
                    "set JOBQUEUE_HTTP_ALLOW_PRIVATE=true to allow"
                )
    return addresses


async def _read_capped(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    """At most ``limit`` bytes of the decoded body, and whether more was left unread."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        if len(chunk) > limit - size:
            chunks.append(chunk[: limit - size])
            return b"".join(chunks), True
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks), False


def _decode(response: httpx.Response, data: bytes, truncated: bool) -> str:
    try:
        decoder = codecs.getincrementaldecoder(response.charset_encoding or "utf-8")("replace")
    except LookupError:
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
    # A cut body may end inside a character: final=False drops the partial bytes.
    return decoder.decode(data, final=not truncated).replace("\x00", "\ufffd")


async def _outcome(response: httpx.Response, max_bytes: int, started: float) -> dict[str, Any]:
    """The result of a 2xx answer, or the signal for any other (module docstring)."""
    status = response.status_code
    request = response.request
    where = f"{request.method} {request.url.scheme}://{request.headers['host']}"
    if 200 <= status < 300:
        data, truncated = await _read_capped(response, max_bytes)
        return {
            "status": status,
            "headers": dict(response.headers),
            "body": _decode(response, data, truncated),
            "truncated": truncated,
            "elapsed_ms": round((time.perf_counter() - started) * 1000, 3),
        }
    if 300 <= status < 400:
        location = response.headers.get("location", "(no Location)")
        raise Discard(
            f"{where} answered {status}, a redirect to {location}, which is not "
            "followed: set payload.url to the final address"
        )
    data, truncated = await _read_capped(response, ERROR_SNIPPET_BYTES)
    snippet = _decode(response, data, truncated) + ("…" if truncated else "")
    message = f"{where} answered {status} {response.reason_phrase}: {snippet!r}"
    if status in (408, 429) or status >= 500:
        delay = parse_retry_after(response.headers.get("retry-after"))
        if delay is not None:
            raise RetryLater(delay, f"{message}; Retry-After: {delay:g} s")
        raise DeliveryError(message)
    raise Discard(message)


async def _send(
    spec: HttpRequest,
    headers: dict[str, str],
    addresses: list[str],
    config: HttpTaskConfig,
    tls: ssl.SSLContext,
) -> dict[str, Any]:
    """Send ``spec`` to the first of ``addresses`` that accepts a connection (pinned)."""
    host = spec.url.raw_host.decode("ascii")
    headers = {"host": spec.url.netloc.decode("ascii"), **headers}
    where = f"{spec.method} {spec.url.scheme}://{headers['host']}"
    async with httpx.AsyncClient(
        verify=tls, trust_env=False, follow_redirects=False, timeout=spec.timeout_seconds
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
                return await _outcome(response, config.max_response_bytes, started)
            finally:
                await response.aclose()
    raise DeliveryError(f"{where}: the host resolved to no address")


async def deliver(
    spec: HttpRequest, headers: dict[str, str], config: HttpTaskConfig, tls: ssl.SSLContext
) -> dict[str, Any]:
    """Resolve, check and send ``spec`` within ``spec.timeout_seconds`` (the whole request).

    Returns:
        the 2xx result (shape in the module docstring).

    Raises:
        Discard, RetryLater, DeliveryError, DeliveryTimeout: see the module docstring.
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
            return await _send(spec, headers, addresses, config, tls)
    except TimeoutError:
        if not deadline.expired():
            raise
        raise DeliveryTimeout(f"{where} timed out after {spec.timeout_seconds:g} s") from None
    except httpx.TimeoutException as exc:
        kind = type(exc).__name__
        raise DeliveryTimeout(f"{where} timed out ({kind}, {spec.timeout_seconds:g} s)") from None
    except httpx.TransportError as exc:
        raise DeliveryError(f"{where} failed: {type(exc).__name__}: {exc}") from None


def make_payload_check(config: HttpTaskConfig) -> Callable[[dict[str, Any]], None]:
    """The enqueue-time check of an ``http`` payload's shape (``registry.register(...,
    validate=...)``): a payload that cannot describe a request is refused with a 422 instead of
    becoming a failed job. The target policy (allowed hosts, private addresses) is checked when
    the job runs, after DNS resolution, and refuses by failing the job.

    Raises (from the returned function):
        ValueError: what to fix, as :func:`parse_payload` says it.
    """

    def check(payload: dict[str, Any]) -> None:
        try:
            parse_payload(payload, config.default_timeout_seconds)
        except Discard as exc:
            raise ValueError(str(exc)) from exc

    return check


def make_http_task(config: HttpTaskConfig) -> Callable[[JobContext], Awaitable[dict[str, Any]]]:
    """Build the ``http`` task for ``config``; register it as ``registry.register("http", …)``.

    Raises:
        ConfigurationError: when ``config`` cannot work (a bad ``whsec_`` secret, a
            non-positive timeout, a negative ``max_response_bytes``).
    """
    if config.default_timeout_seconds <= 0 or config.max_response_bytes < 0:
        raise ConfigurationError(
            "the http task needs default_timeout_seconds > 0 and max_response_bytes >= 0"
        )
    key = signing_key(config.signing_secret) if config.signing_secret else None
    tls: list[ssl.SSLContext] = []  # made on first use: loading the CA bundle takes a while

    async def http(ctx: JobContext) -> dict[str, Any]:
        """Deliver ``ctx.payload`` as one HTTP request (see :mod:`jobqueue.tasks.http`)."""
        spec = parse_payload(ctx.payload, config.default_timeout_seconds)
        host = spec.url.raw_host.decode("ascii")
        if not (
            host_allowed(host, config.allowed_hosts)
            or host_allowed(spec.url.host, config.allowed_hosts)
        ):
            raise Discard(
                f"host {spec.url.host!r} is not in JOBQUEUE_HTTP_ALLOWED_HOSTS "
                f"({', '.join(config.allowed_hosts) or 'empty'})"
            )
        headers = {"user-agent": _USER_AGENT, "accept-encoding": "identity"}
        headers.update({name.lower(): value for name, value in spec.headers.items()})
        if key is not None:
            message_id, timestamp = f"job_{ctx.job_id}", int(time.time())
            headers["webhook-id"] = message_id
            headers["webhook-timestamp"] = str(timestamp)
            headers["webhook-signature"] = sign(key, message_id, timestamp, spec.content)
        if not tls:
            tls.append(httpx.create_ssl_context(trust_env=True))
        return await deliver(spec, headers, config, tls[0])

    return http
