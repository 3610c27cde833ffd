"""The NOTIFY protocol: one encoder, one decoder, and a listener that skips its own echo."""

from __future__ import annotations

from typing import Any

import pytest

from jobqueue.db.engine import create_engine
from jobqueue.notify import CancelRequested, JobsFinished, Listener, Ping, QueuesRunnable, protocol


def unconnected_listener(origin: str | None = None) -> Listener:
    """A listener that never runs (``deliver`` only): its engine opens no connection."""
    return Listener("postgresql://unused", create_engine("postgresql://unused/unused", 1), origin)


@pytest.mark.parametrize(
    ("event", "payload"),
    [
        (QueuesRunnable(frozenset({"emails", "default"})), "q:default,emails"),
        (QueuesRunnable(frozenset({"default"}), "ab12cd34"), "q@ab12cd34:default"),
        (QueuesRunnable(None), "q:*"),
        (JobsFinished(frozenset({13, 12})), "f:12,13"),
        (CancelRequested(frozenset({7})), "c:7"),
        (CancelRequested(None), "c:*"),
        (Ping("3f9a0c1d5e7b2a46"), "p:3f9a0c1d5e7b2a46"),
    ],
)
def test_protocol_encode_then_decode_round_trips(event: protocol.Event, payload: str) -> None:
    assert protocol.encode(event) == payload
    assert protocol.decode(payload) == event


def test_protocol_too_many_items_become_all() -> None:
    payload = protocol.encode(JobsFinished(frozenset(range(10**6, 10**6 + 2000))))
    assert payload == "f:*"
    assert protocol.decode(payload) == JobsFinished(None)


@pytest.mark.parametrize("payload", ["", "hello", "x:1,2", "q", "f:", "c:abc,²"])
def test_protocol_decode_never_raises_on_foreign_payloads(payload: str) -> None:
    event = protocol.decode(payload)
    assert event is None or isinstance(event, QueuesRunnable | JobsFinished | CancelRequested)
    if payload == "c:abc,²":
        assert event == CancelRequested(frozenset())


def test_listener_skips_its_own_runnable_echo_only() -> None:
    listener = unconnected_listener(origin="ab12cd34")
    runnable: list[QueuesRunnable] = []
    finished: list[JobsFinished] = []
    listener.subscribe(QueuesRunnable, runnable.append)
    listener.subscribe(JobsFinished, finished.append)
    listener.deliver(protocol.queues_runnable(["default"], "ab12cd34"))
    listener.deliver(protocol.queues_runnable(["default"], "99999999"))
    listener.deliver("q:emails")
    listener.deliver("f:5")
    assert runnable == [
        QueuesRunnable(frozenset({"default"}), "99999999"),
        QueuesRunnable(frozenset({"emails"})),
    ]
    assert finished == [JobsFinished(frozenset({5}))]


def test_listener_subscriber_error_does_not_stop_the_others() -> None:
    listener = unconnected_listener()
    got: list[JobsFinished] = []

    def broken(event: JobsFinished) -> None:
        raise RuntimeError("bug in a subscriber")

    listener.subscribe(JobsFinished, broken)
    listener.subscribe(JobsFinished, got.append)
    listener.deliver("f:1")
    assert got == [JobsFinished(frozenset({1}))]


@pytest.mark.parametrize("payload", ["x:1,2", "z@ab12cd34:5", "ping:abc", "P:abc"])
def test_protocol_decode_unknown_kind_is_none(payload: str) -> None:
    # What lets a process built before a kind existed (``p`` in this release) skip it.
    assert protocol.decode(payload) is None


def test_protocol_new_ping_token_is_16_hex_digits_and_fresh() -> None:
    tokens = {protocol.new_ping_token() for _ in range(100)}
    assert len(tokens) == 100
    assert all(len(token) == 16 and int(token, 16) >= 0 for token in tokens)


def test_listener_ping_reaches_no_subscriber() -> None:
    # Every process pings on the shared channel: no subscriber may see another's ping.
    listener = unconnected_listener()
    got: list[Any] = []
    for kind in (QueuesRunnable, JobsFinished, CancelRequested, Ping):
        listener.subscribe(kind, got.append)
    listener.deliver(protocol.encode(Ping(protocol.new_ping_token())))
    assert got == []
