"""Where a delivery may go: the host allow-list, address classification, literal addresses in
URLs, and DNS resolution (whose checked addresses the request is then pinned to)."""

from __future__ import annotations

import asyncio
import fnmatch
import ipaddress
import re
import socket
import urllib.parse
from collections.abc import Iterable

import httpx

from jobqueue.errors import Discard
from jobqueue.tasks.http._errors import DeliveryError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052 well-known prefix
# One part of a numeric IPv4 host as inet_aton(3) reads it: 0x-hex, 0-octal or decimal.
_INET_ATON_PART = re.compile(r"0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*")


def classify_address(address: IPAddress) -> str | None:
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


def _inet_aton_part(part: str) -> int | None:
    if not _INET_ATON_PART.fullmatch(part):
        return None
    if part[:2] in ("0x", "0X"):
        return int(part[2:], 16)
    if part[0] == "0":
        return int(part, 8)
    return int(part) if len(part) <= 10 else None  # 2**32 has 10 digits; int() caps digits


def parse_inet_aton(text: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address ``text`` names the way ``inet_aton(3)`` (glibc; and so ``getaddrinfo``)
    reads it, or None when it is not such a number.

    One to four dot-separated parts, each decimal, octal (a leading ``0``) or hexadecimal
    (``0x``); the last part fills the remaining bytes: ``127.1`` is 127.0.0.1, ``2130706433`` and
    ``0x7f000001`` are 127.0.0.1, ``0177.0.0.1`` is 127.0.0.1, ``0`` is 0.0.0.0. Nothing may
    follow the last part (unlike ``socket.inet_aton``, which ignores text after a space).
    """
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values = [_inet_aton_part(part) for part in parts]
    if None in values:
        return None
    *leading, last = [v for v in values if v is not None]
    if any(v > 0xFF for v in leading) or last >= 1 << (8 * (4 - len(leading))):
        return None
    number = sum(v << (8 * (3 - i)) for i, v in enumerate(leading)) + last
    return ipaddress.IPv4Address(number)


def literal_address(host: str) -> IPAddress | None:
    """The IP address that the URL host ``host`` names literally, or None for a host name.

    Reads the forms that an HTTP client or the system resolver takes for an address: IPv6
    (``::1``, ``::ffff:127.0.0.1``, a ``%zone`` dropped), dotted IPv4 and the numeric forms of
    :func:`parse_inet_aton` (``2130706433``, ``0x7f000001``, ``0177.0.0.1``, ``127.1``, ``0``).
    Like the WHATWG URL standard, percent-escapes are decoded first and one trailing dot is
    ignored (``127.0.0.1.``), so that no client's reading of the host escapes the check.

    Args:
        host: the URL's host without brackets (``httpx.URL.host``), e.g. ``"::1"``.
    """
    text = urllib.parse.unquote(host)
    if ":" in text:
        try:
            return ipaddress.IPv6Address(text.strip("[]").partition("%")[0])
        except ValueError:
            return None
    return parse_inet_aton(text.removesuffix("."))


def refuse_literal_address(url: httpx.URL) -> None:
    """Refuse ``url`` when its host is an IP address written literally (in any form of
    :func:`literal_address`) that :func:`classify_address` does not let through without
    ``allow_private``. Host names are left to :func:`resolve_target` when the job runs.

    Raises:
        Discard: naming the host, the address it stands for and the rule.
    """
    host = url.host
    address = literal_address(host)
    reason = None if address is None else classify_address(address)
    if reason is not None:
        shown = host if str(address) == host else f"{host!r}, that is {address}"
        raise Discard(
            f"payload.url names the IP address {shown}, {reason}: only public addresses may be "
            "called (set JOBQUEUE_HTTP_ALLOW_PRIVATE=true to allow)"
        )


def parse_host_patterns(value: str) -> tuple[str, ...]:
    """Split ``JOBQUEUE_HTTP_ALLOWED_HOSTS`` (comma-separated) into patterns, blanks dropped."""
    return tuple(part.strip() for part in value.split(",") if part.strip())


def host_allowed(host: str, patterns: Iterable[str]) -> bool:
    """Whether ``host`` matches one of ``patterns`` (``fnmatch``, case-insensitive, a trailing
    dot ignored)."""
    name = host.rstrip(".").lower()
    return any(fnmatch.fnmatchcase(name, p.strip().rstrip(".").lower()) for p in patterns)


def check_allowed_host(url: httpx.URL, patterns: tuple[str, ...]) -> None:
    """Refuse ``url`` unless its host (as sent, IDNA-encoded, or as written) matches one of
    ``patterns`` (:func:`host_allowed`).

    Raises:
        Discard: naming the host and the patterns (``JOBQUEUE_HTTP_ALLOWED_HOSTS``).
    """
    host = url.raw_host.decode("ascii")
    if not (host_allowed(host, patterns) or host_allowed(url.host, patterns)):
        raise Discard(
            f"host {url.host!r} is not in JOBQUEUE_HTTP_ALLOWED_HOSTS "
            f"({', '.join(patterns) or 'empty'})"
        )


async def resolve_target(host: str, port: int, *, allow_private: bool) -> list[str]:
    """The addresses ``host`` resolves to (``loop.getaddrinfo``), in the resolver's order.

    The request is then sent to one of these addresses (pinned), never to a second lookup's
    answer, so DNS rebinding between the check and the connection does not work.

    Args:
        host: a host name or address, as sent (IDNA-encoded).
        port: the TCP port (1-65535).
        allow_private: skip the address checks.

    Returns:
        addresses as text (``"93.184.216.34"``, ``"2606:2800::1"``), duplicates dropped.

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
