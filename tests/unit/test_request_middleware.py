"""RequestMiddleware: a client that went away mid-body is recorded as 499, not as our 500."""

from __future__ import annotations

from prometheus_client import generate_latest
from starlette.requests import ClientDisconnect
from starlette.types import Message, Receive, Scope, Send

from jobqueue.api.middleware import RequestMiddleware
from jobqueue.metrics import Metrics


async def test_a_client_gone_mid_body_counts_499_and_sends_nothing() -> None:
    # A body uvicorn could not read (a bad chunk size, a short Content-Length then close)
    # reached the route as ClientDisconnect, which was logged as request_failed and counted
    # as a 500 (fresh-user finding): anyone could raise 5xx alerts.
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise ClientDisconnect()

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    metrics = Metrics()
    scope: Scope = {"type": "http", "method": "POST", "path": "/jobs", "headers": []}
    await RequestMiddleware(app, metrics)(scope, receive, send)

    assert sent == []
    text = generate_latest(metrics.registry).decode()
    assert 'status="499"' in text
    assert 'status="500"' not in text
