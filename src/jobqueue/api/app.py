"""``create_app(settings)``: the only place where everything is wired together.

The lifespan hook opens the database (the embedded one when no URL is set), migrates it unless
``JOBQUEUE_AUTO_MIGRATE=false``, builds the service and starts the worker pool; on shutdown it
stops the pool gracefully (see ``worker/pool.py``) and closes the engine.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import structlog
from fastapi import FastAPI

from jobqueue import __version__
from jobqueue.api import errors
from jobqueue.api.auth import Access
from jobqueue.api.limits import BodySizeLimit
from jobqueue.api.middleware import RequestMiddleware
from jobqueue.api.routes import health, jobs
from jobqueue.api.routes import metrics as metrics_routes
from jobqueue.db.embedded import EmbeddedPostgres, start_embedded
from jobqueue.db.engine import asyncpg_dsn, create_engine, normalise_url
from jobqueue.db.migrations import head_revision, upgrade_to_head
from jobqueue.db.notifications import Notifications
from jobqueue.metrics import Metrics
from jobqueue.service import JobDefaults, JobService
from jobqueue.settings import Settings
from jobqueue.tasks import builtins
from jobqueue.tasks.http import (
    HttpTaskConfig,
    make_http_task,
    make_payload_check,
    parse_host_patterns,
)
from jobqueue.tasks.registry import TaskRegistry, default_registry, import_task_modules
from jobqueue.worker import PoolConfig, WorkerPool
from jobqueue.worker.outcome import RetryPolicy

log = structlog.get_logger(__name__)

__all__ = ["builtins", "create_app", "open_database"]


def open_database(settings: Settings) -> tuple[str, EmbeddedPostgres | None]:
    """The database URL to use, starting the embedded PostgreSQL when none is configured.

    Blocking (the embedded start takes seconds): call it from a thread in async code.

    Returns:
        ``(sqlalchemy_url, embedded_or_None)``; stop the embedded server when done.

    Raises:
        ConfigurationError: the URL is not a PostgreSQL URL, or no URL is set and no embedded
            PostgreSQL package is installed.
    """
    if settings.database_url_value:
        return normalise_url(settings.database_url_value), None
    embedded = start_embedded(Path(settings.data_dir))
    return embedded.url, embedded


def create_app(settings: Settings | None = None, registry: TaskRegistry | None = None) -> FastAPI:
    """Build the FastAPI app.

    Args:
        settings: the process's settings (read from the environment when None).
        registry: the tasks to run (the default registry, with ``JOBQUEUE_TASK_MODULES``
            imported, when None).
    """
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        import_task_modules(settings.task_module_names)
        tasks = registry or with_http_task(default_registry, settings)
        url, embedded = await asyncio.to_thread(open_database, settings)
        try:
            if settings.auto_migrate:
                await asyncio.to_thread(upgrade_to_head, url)
            engine = create_engine(url, settings.db_pool_size, settings.db_pool_timeout_seconds)
            notifications = Notifications(asyncpg_dsn(url))
            listening = asyncio.create_task(notifications.run(), name="jobqueue-listen")
            metrics = Metrics()
            service = JobService(
                engine,
                tasks,
                JobDefaults(
                    max_attempts=settings.max_attempts,
                    timeout_seconds=settings.default_timeout_seconds,
                    max_payload_bytes=settings.max_payload_bytes,
                    max_payload_depth=settings.max_payload_depth,
                ),
                notifications,
                metrics,
            )
            pool = None
            if settings.workers_enabled:
                pool = WorkerPool(engine, tasks, pool_config(settings), notifications, metrics)
                service.add_enqueue_listener(pool.wake)
                metrics.workers = _workers_of(pool)
                await pool.start()
            app.state.service = service
            app.state.metrics = metrics
            app.state.pool = pool
            app.state.notifications = notifications
            app.state.head_revision = head_revision()
            log.info("service_started", version=__version__, tasks=tasks.names())
            try:
                yield
            finally:
                if pool is not None:
                    await pool.stop()
                listening.cancel()
                await asyncio.gather(listening, return_exceptions=True)
                await service.close()
                await engine.dispose()
        finally:
            if embedded is not None:
                await asyncio.to_thread(embedded.stop)

    app = FastAPI(
        title="jobqueue",
        version=__version__,
        summary="A PostgreSQL-backed job queue service.",
        lifespan=lifespan,
    )
    errors.install(app)
    app.include_router(jobs.router)
    app.include_router(health.router)
    app.include_router(metrics_routes.router)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    app.add_middleware(RequestMiddleware, metrics=lambda: getattr(app.state, "metrics", None))
    # --- web dashboard (/ui): pages and /ui/static files, see api/routes/ui.py ---
    from jobqueue.api.routes import ui

    ui.install(app)
    # --- end web dashboard ---
    app.state.settings = settings
    app.state.access = Access.from_settings(settings)
    return app


def with_http_task(registry: TaskRegistry, settings: Settings) -> TaskRegistry:
    """A copy of ``registry`` with the built-in ``http`` task configured from settings."""
    secret = settings.http_signing_secret
    config = HttpTaskConfig(
        signing_secret=secret.get_secret_value() if secret else None,
        allowed_hosts=parse_host_patterns(settings.http_allowed_hosts),
        allow_private=settings.http_allow_private,
        max_response_bytes=settings.http_max_response_bytes,
    )
    tasks = registry.copy()
    tasks.register("http", make_http_task(config), validate=make_payload_check(config))
    return tasks


def _workers_of(pool: WorkerPool) -> Callable[[], tuple[int, int]]:
    return lambda: (pool.holdings.total_busy, pool.concurrency)


def pool_config(settings: Settings) -> PoolConfig:
    """The worker pool's configuration from settings."""
    return PoolConfig(
        queues=settings.queue_concurrency,
        lease_seconds=settings.lease_seconds,
        poll_interval_seconds=settings.poll_interval_seconds,
        shutdown_grace_seconds=settings.shutdown_grace_seconds,
        rescue_interval_seconds=settings.rescue_interval_seconds,
        retry=RetryPolicy(settings.backoff_base_seconds, settings.backoff_max_seconds),
        log_payloads=settings.log_payloads,
    )
