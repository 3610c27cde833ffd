"""The application's typed state: what ``create_app`` and its lifespan build, and what routes
read through the dependencies of ``api/deps.py`` (never attributes of ``app.state``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from fastapi import FastAPI

from jobqueue.api.limits import BodyBudget
from jobqueue.metrics import Metrics
from jobqueue.notify import Listener
from jobqueue.service import JobService
from jobqueue.service.dashboard import DashboardService
from jobqueue.settings import Settings

if TYPE_CHECKING:  # api/auth.py reads the state: import its type only for the checker
    from jobqueue.api.auth import Access
    from jobqueue.leases import RemoteLeases
    from jobqueue.worker import WorkerPool


class LoopHealth(Protocol):
    """What the health routes need of the supervisor (``maintenance/supervisor.py``)."""

    def down(self) -> dict[str, str]:
        """``{loop: why it is down}`` for every loop not running now."""
        ...

    def failing_for(self, seconds: float) -> dict[str, str]:
        """``{loop: why}`` for every loop that has kept failing for more than ``seconds``."""
        ...


@dataclass(frozen=True)
class Runtime:
    """What the lifespan builds; present while the app runs.

    Attributes:
        service: the job use cases.
        dashboard: the dashboard's reads.
        listener: the LISTEN connection (``None`` in poll-only mode).
        loops: the supervisor's view of the background loops.
        workers: ``() -> (busy, total)`` runner slots of this process; ``None`` without a pool.
        head_revision: the migration this build expects the database to be at.
        stop: the orderly stop of the loops and the pool (idempotent; the lifespan calls it).
        leases: the lease API's use cases (``api/routes/leases.py``).
        pool: the worker pool, for the composition root and tests; routes use ``workers``.
    """

    service: JobService
    dashboard: DashboardService
    listener: Listener | None
    loops: LoopHealth
    workers: Callable[[], tuple[int, int]] | None
    head_revision: str
    stop: Callable[[], Awaitable[None]]
    leases: RemoteLeases
    pool: WorkerPool | None = None


@dataclass
class AppState:
    """Everything the routes may read.

    Attributes:
        settings: the process's settings.
        access: the access rules (keys, sessions).
        metrics: the app's metrics (built with the app, so middleware can count from the start).
        bodies: the request body bytes in flight (``api/limits.py``).
        runtime: set by the lifespan; ``None`` before it ran and after it ended.
    """

    settings: Settings
    access: Access
    metrics: Metrics
    bodies: BodyBudget
    runtime: Runtime | None = None


def state_of(app: FastAPI) -> AppState:
    """The :class:`AppState` that ``create_app`` stored on ``app``."""
    state: AppState = app.state.jobqueue
    return state
