"""The ``http`` task's configuration."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

TransportFactory = Callable[[ssl.SSLContext], httpx.AsyncBaseTransport]
"""Makes the transport of one delivery from the TLS context to verify servers with.

Called once per delivery; the transport is closed when the delivery ends. Tests pass
``lambda _tls: httpx.MockTransport(handler)``, whose handler answers with a raw stream
(``httpx.Response(200, stream=httpx.ByteStream(raw))``): the task reads raw bytes
(``aiter_raw``), and a response built with ``content=`` has already been read (and decoded, without
a bound) by httpx, so reading it again raises ``httpx.StreamConsumed``.
"""


def default_transport(tls: ssl.SSLContext) -> httpx.AsyncBaseTransport:
    """The transport used when :attr:`HttpTaskConfig.transport_factory` is None: httpx's own, with
    its own connection pool (so one delivery's connections are never reused by another), the
    given TLS context, no environment proxies and no connection retries."""
    return httpx.AsyncHTTPTransport(verify=tls, trust_env=False, retries=0)


@dataclass(frozen=True)
class HttpTaskConfig:
    """Settings of the ``http`` task (``create_app`` builds it from the settings,
    ``JOBQUEUE_HTTP_*``).

    Attributes:
        signing_secret: Standard Webhooks secret (``JOBQUEUE_HTTP_SIGNING_SECRET``); ``whsec_``
            + base64, or any other string used as UTF-8. None or empty: requests are not signed.
        allowed_hosts: ``fnmatch`` host patterns (``JOBQUEUE_HTTP_ALLOWED_HOSTS``), e.g.
            ``("*.example.com",)``; ``("*",)`` allows every host.
        allow_private: let requests reach private, loopback, link-local … addresses
            (``JOBQUEUE_HTTP_ALLOW_PRIVATE``). When false, a URL whose host is such an address
            written literally (``127.0.0.1``, ``[::1]``, ``0x7f000001`` …) is also refused at
            enqueue.
        max_response_bytes: most bytes of a 2xx body kept in the result, counted after the
            body's content coding is undone (``JOBQUEUE_HTTP_MAX_RESPONSE_BYTES``). A plain body
            over it is cut (``"truncated": true``); a compressed body that decodes to more fails
            the attempt (see :mod:`jobqueue.tasks.http`).
        default_timeout_seconds: whole-request timeout when the payload names none, seconds.
        transport_factory: makes each delivery's transport (:data:`TransportFactory`); None uses
            :func:`default_transport`. Tests inject ``httpx.MockTransport`` here.
    """

    signing_secret: str | None = field(default=None, repr=False)  # a secret: never in logs
    allowed_hosts: tuple[str, ...] = ("*",)
    allow_private: bool = False
    max_response_bytes: int = 65536
    default_timeout_seconds: float = 30.0
    transport_factory: TransportFactory | None = field(default=None, repr=False, compare=False)
