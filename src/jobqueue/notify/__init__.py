"""NOTIFY: the protocol (one encoder and decoder), the LISTEN connection, long-poll waiters.

Layering: ``notify`` uses ``db`` (connection errors) and the domain; ``service``, ``leases`` and
``worker`` use it. ``db`` itself never builds a payload: statements that notify take the payload
(or, in ``leases/``, a SQL expression from :func:`protocol.sql_payload`) from above.
"""

from jobqueue.notify import protocol
from jobqueue.notify.listener import Listener
from jobqueue.notify.protocol import (
    CHANNEL,
    CancelRequested,
    Event,
    JobsFinished,
    Ping,
    QueuesRunnable,
    decode,
    encode,
)
from jobqueue.notify.waiters import FinishWaiters, QueueWaiters

__all__ = [
    "CHANNEL",
    "CancelRequested",
    "Event",
    "FinishWaiters",
    "JobsFinished",
    "Listener",
    "Ping",
    "QueueWaiters",
    "QueuesRunnable",
    "decode",
    "encode",
    "protocol",
]
