"""The client's unit tests never wait: the pauses between retries are recorded instead."""

from __future__ import annotations

import pytest

from jobqueue.client import _async, _sync


@pytest.fixture(autouse=True)
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The pauses the clients took between retries, seconds, in order (none is slept)."""
    pauses: list[float] = []

    def pause(seconds: float) -> None:
        pauses.append(seconds)

    async def async_pause(seconds: float) -> None:
        pauses.append(seconds)

    monkeypatch.setattr(_sync, "_pause", pause)
    monkeypatch.setattr(_async, "_pause", async_pause)
    return pauses
