"""The task function and its enqueue-time payload check."""

from __future__ import annotations

import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from jobqueue.errors import ConfigurationError, Discard
from jobqueue.tasks.http._config import HttpTaskConfig
from jobqueue.tasks.http._payload import parse_payload
from jobqueue.tasks.http._signing import signing_key, webhook_headers
from jobqueue.tasks.http._targets import check_allowed_host, refuse_literal_address
from jobqueue.tasks.http._transport import deliver
from jobqueue.tasks.registry import JobContext

USER_AGENT = "jobqueue-http/1"
"""The ``User-Agent`` sent when the payload names none."""

ACCEPT_ENCODING = "identity"
"""The ``Accept-Encoding`` always sent (the payload may not set it): ask for an uncompressed
body, so that a large answer is cut (``"truncated": true``) rather than failing as a compressed
body over the bound would. A server that compresses anyway is still decoded (one coding)."""


def make_payload_check(config: HttpTaskConfig) -> Callable[[dict[str, Any]], None]:
    """The enqueue-time check of an ``http`` payload (``registry.register(..., validate=...)``):
    a payload that cannot describe a request is refused with a 422 instead of becoming a failed
    job. Unless ``config.allow_private``, so is a URL whose host is a non-public IP address
    written literally, in any form (``127.0.0.1``, ``[::1]``, ``2130706433``, ``0x7f000001``,
    ``0177.0.0.1``, ``127.1``, ``[::ffff:10.0.0.1]`` …). Host names are checked when the job
    runs, after DNS resolution (the answer may change), and so is the host allow-list; those
    refusals fail the job.

    Raises (from the returned function):
        ValueError: what to fix, as :func:`parse_payload` and
            :func:`~jobqueue.tasks.http.refuse_literal_address` say it.
    """

    def check(payload: dict[str, Any]) -> None:
        try:
            spec = parse_payload(payload, config.default_timeout_seconds)
            if not config.allow_private:
                refuse_literal_address(spec.url)
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
        check_allowed_host(spec.url, config.allowed_hosts)
        headers = {"user-agent": USER_AGENT}
        headers.update({name.lower(): value for name, value in spec.headers.items()})
        headers["accept-encoding"] = ACCEPT_ENCODING
        if key is not None:
            headers.update(
                webhook_headers(key, f"job_{ctx.job_id}", int(time.time()), spec.content)
            )
        if not tls:
            tls.append(httpx.create_ssl_context(trust_env=True))
        return await deliver(spec, headers, config, tls[0])

    return http
