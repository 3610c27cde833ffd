"""The signals of a delivery that may succeed later (the other outcomes are :class:`Discard` and
:class:`RetryLater` from :mod:`jobqueue.errors`)."""

from __future__ import annotations


class DeliveryError(Exception):
    """A delivery that may succeed later (5xx, 429, network error): the normal backoff applies."""


class DeliveryTimeout(DeliveryError, TimeoutError):
    """The request did not finish within its ``timeout_seconds``; retried like any DeliveryError."""
