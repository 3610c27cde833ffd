"""The NOTIFY protocol: one encoder, one decoder, and a listener that skips its own echo."""

from __future__ import annotations

import pytest

from jobqueue.notify import CancelRequested, JobsFinished, Listener, QueuesRunnable, protocol


@pytest.mark.parametrize(
    ("event", "payload"),
    [
        (QueuesRunnable(frozenset({"emails", "default"})), "q:default,emails"),
        (QueuesRunnable(frozenset({"default"}), "ab12cd34"), "q@ab12cd34:default"),
        (QueuesRunnable(None), "q:*"),
        (JobsFinished(frozenset({13, 12})), "f:12,13"),
        (CancelRequested(frozenset({7})), "c:7"),
        (CancelRequested(None), "c:*"),
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
    listener = Listener("postgresql://unused", origin="ab12cd34")
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
    listener = Listener("postgresql://unused")
    got: list[JobsFinished] = []

    def broken(event: JobsFinished) -> None:
        raise RuntimeError("bug in a subscriber")

    listener.subscribe(JobsFinished, broken)
    listener.subscribe(JobsFinished, got.append)
    listener.deliver("f:1")
    assert got == [JobsFinished(frozenset({1}))]
