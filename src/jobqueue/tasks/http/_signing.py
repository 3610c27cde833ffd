"""Signing per the Standard Webhooks spec (https://www.standardwebhooks.com/)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from jobqueue.errors import ConfigurationError


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


def webhook_headers(key: bytes, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt.

    Args:
        key: the HMAC key (see :func:`signing_key`).
        message_id: ``job_<id>``, the same for every attempt so receivers can drop duplicates.
        timestamp: the send time, integer unix seconds.
        body: the exact bytes sent as the request body.

    Returns:
        ``{"webhook-id": …, "webhook-timestamp": …, "webhook-signature": "v1,…"}``.
    """
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(key, message_id, timestamp, body),
    }
