"""The supervisor: every background loop of a process runs under it.

A loop is an ``async`` function that runs until cancelled. Expected faults (the database is
down) are handled inside the loop; anything that escapes it is a bug or an injected fault: the
supervisor logs it with its traceback, counts it (``jobqueue_loop_restarts_total{loop}``) and
restarts the loop after a backoff (doubling from ``restart_base_seconds`` up to
``restart_max_seconds``; a loop that ran ``stable_seconds`` without failing starts again from
the base). Procrastinate's side-loop monitor and River's ``startstop`` services are the models.

Health, as the probes read it (docs/deploy.md, "Probes"):

- :meth:`Supervisor.down` names the loops that are not running now (in their restart backoff):
  ``/readyz`` answers 503 while any is;
- :meth:`Supervisor.failing_for` names the loops that have kept failing for longer than a
  given time (``JOBQUEUE_UNHEALTHY_AFTER_SECONDS``): ``/healthz`` answers 503 then, so that an
  orchestrator restarts the process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import structlog

from jobqueue.metrics import Metrics

log = structlog.get_logger(__name__)

STOP_TIMEOUT_SECONDS = 10.0
"""How long :meth:`Supervisor.stop` waits for cancelled loops to end, in seconds."""

Loop = Callable[[], Awaitable[None]]


@dataclass
class LoopState:
    """What the supervisor knows of one loop.

    Attributes:
        name: e.g. ``claim``, ``heartbeat``, ``runner-3``, ``rescuer``, ``listen``.
        running: False while it waits to be restarted.
        restarts: how many times it was restarted.
        last_error: ``repr`` of its last exception.
        started_at: monotonic time of its last (re)start.
        failing_since: monotonic time of the first failure of the current streak, or None.
    """

    name: str
    running: bool = False
    restarts: int = 0
    last_error: str = ""
    started_at: float = 0.0
    failing_since: float | None = None


class Supervisor:
    """Runs named loops and restarts the ones that raise.

    Args:
        metrics: ``jobqueue_loop_restarts_total`` is counted there.
        restart_base_seconds: the first restart delay, in seconds.
        restart_max_seconds: the longest restart delay, in seconds.
        stable_seconds: a loop that ran this long without failing has recovered, in seconds.
        clock: monotonic seconds.
    """

    def __init__(
        self,
        metrics: Metrics,
        *,
        restart_base_seconds: float = 0.1,
        restart_max_seconds: float = 10.0,
        stable_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.metrics = metrics
        self.restart_base_seconds = restart_base_seconds
        self.restart_max_seconds = restart_max_seconds
        self.stable_seconds = stable_seconds
        self.clock = clock
        self.states: dict[str, LoopState] = {}
        self._loops: dict[str, Loop] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def add(self, name: str, loop: Loop) -> None:
        """Register ``loop`` under ``name`` (started by :meth:`start`, or at once if running).

        Raises:
            ValueError: the name is taken.
        """
        if name in self._loops:
            raise ValueError(f"a loop named {name!r} is already supervised")
        self._loops[name] = loop
        self.states[name] = LoopState(name)
        if self._tasks:
            self._spawn(name)

    async def start(self) -> None:
        """Start every registered loop; returns at once."""
        for name in self._loops:
            if name not in self._tasks:
                self._spawn(name)

    def _spawn(self, name: str) -> None:
        self.states[name].running = True  # from now on until it fails: not "down"
        self._tasks[name] = asyncio.create_task(self._supervise(name), name=f"jobqueue-{name}")

    async def _supervise(self, name: str) -> None:
        state = self.states[name]
        delay = self.restart_base_seconds
        while True:
            state.running = True
            state.started_at = self.clock()
            try:
                await self._loops[name]()
                error: BaseException = RuntimeError("the loop returned")
            except asyncio.CancelledError:
                state.running = False
                raise
            except Exception as exc:
                error = exc
            now = self.clock()
            if state.failing_since is not None and now - state.started_at >= self.stable_seconds:
                state.failing_since = None
                delay = self.restart_base_seconds
            state.running = False
            state.failing_since = state.failing_since or now
            state.last_error = repr(error)
            state.restarts += 1
            self.metrics.loop_restarts.labels(name).inc()
            log.error(
                "loop_crashed",
                loop=name,
                error=repr(error),
                restart_in_seconds=delay,
                restarts=state.restarts,
                exc_info=error,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.restart_max_seconds)

    def down(self) -> dict[str, str]:
        """``{loop: why}`` for every loop waiting to be restarted now."""
        return {
            name: f"down, restarting (restarts: {state.restarts}; last error {state.last_error})"
            for name, state in self.states.items()
            if name in self._tasks and not state.running
        }

    def failing_for(self, seconds: float) -> dict[str, str]:
        """``{loop: why}`` for every loop whose failures have lasted more than ``seconds``
        without a stable run in between (``stable_seconds``)."""
        now = self.clock()
        failing: dict[str, str] = {}
        for name, state in self.states.items():
            since = state.failing_since
            if since is None or (state.running and now - state.started_at >= self.stable_seconds):
                continue
            if now - since > seconds:
                failing[name] = (
                    f"failing for {now - since:.0f} s (restarts: {state.restarts}; "
                    f"last error {state.last_error})"
                )
        return failing

    async def stop(
        self, names: Iterable[str] | None = None, timeout_seconds: float = STOP_TIMEOUT_SECONDS
    ) -> None:
        """Cancel the loops named (all by default) and wait until they have ended, at most
        ``timeout_seconds``: a loop still running then (something in it ignores cancellation)
        is logged ``loop_not_stopped`` and left behind, so that shutdown goes on."""
        chosen = list(self._tasks) if names is None else [n for n in names if n in self._tasks]
        tasks = {self._tasks.pop(name): name for name in chosen}
        for task in tasks:
            task.cancel()
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=timeout_seconds)
            for task in pending:
                log.error("loop_not_stopped", loop=tasks[task], waited_seconds=timeout_seconds)
        for name in chosen:
            self.states[name].running = False
