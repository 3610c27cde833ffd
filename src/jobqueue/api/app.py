"""``create_app(settings)``: the composition root, the only place where everything is wired.

The lifespan hook opens the database (the embedded one when no URL is set), migrates it unless
``JOBQUEUE_AUTO_MIGRATE=false``, builds the service, and starts the background loops under one
supervisor: the LISTEN connection (unless ``JOBQUEUE_LISTEN=false``: poll-only, see
docs/deploy.md), and with a worker pool its claim loop, heartbeat, runners, the rescuer, the
pruner (retention) and the process registry. On shutdown it drains the pool (see
``worker/pool.py``), stops the loops, writes what the pool still holds, and closes the engine.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import structlog
from fastapi import FastAPI
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from jobqueue import __version__
from jobqueue.api import errors
from jobqueue.api.auth import Access, add_security_scheme
from jobqueue.api.bodies import loads_unique
from jobqueue.api.docs import DOCS_URL, DocsPolicy, create_fastapi
from jobqueue.api.guard import HostGuard
from jobqueue.api.limits import BodyBudget, BodySizeLimit
from jobqueue.api.methods import HeadAsGet
from jobqueue.api.middleware import ProxyHeaders, RequestMiddleware
from jobqueue.api.routes import health, jobs, leases, processes, queues, schedules
from jobqueue.api.routes import metrics as metrics_routes
from jobqueue.api.routes.schedules import ScheduleIn
from jobqueue.api.state import AppState, Runtime
from jobqueue.backoff import RetryPolicy
from jobqueue.db.engine import asyncpg_dsn, create_engine, normalise_url
from jobqueue.db.migrations import head_revision, upgrade_to_head
from jobqueue.db.registry import ProcessInfo
from jobqueue.embedded import EmbeddedPostgres, start_embedded
from jobqueue.errors import ConfigurationError, DuplicateKey, InvalidJobRequest
from jobqueue.jobs import JobStatus
from jobqueue.leases import RemoteLeases
from jobqueue.maintenance import (
    ProcessRegistry,
    Pruner,
    Rescuer,
    Scheduler,
    Supervisor,
    Vacuum,
)
from jobqueue.metrics import Metrics
from jobqueue.notify import JobsFinished, Listener, QueuesRunnable, protocol
from jobqueue.service import JobDefaults, JobService, ScheduleSpec
from jobqueue.service._schedules import check_definition
from jobqueue.service.dashboard import DashboardService
from jobqueue.settings import Settings, parse_names
from jobqueue.tasks import builtins
from jobqueue.tasks.http import (
    HttpTaskConfig,
    make_http_task,
    make_payload_check,
    parse_host_patterns,
)
from jobqueue.tasks.registry import TaskRegistry, default_registry, import_task_modules
from jobqueue.worker import PoolConfig, WorkerPool
from jobqueue.worker.pool import new_worker_id

log = structlog.get_logger(__name__)

LISTEN_START_TIMEOUT_SECONDS = 5.0
"""How long start-up waits for the LISTEN connection and its first ping before going on
without it, in seconds."""

__all__ = ["builtins", "create_app", "open_database"]

SCHEDULE_LIST = TypeAdapter(list[ScheduleIn])
"""Parses the settings' schedules as ``POST /schedules`` parses one."""


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
    state = AppState(
        settings=settings,
        access=Access.from_settings(settings),
        metrics=Metrics(label_limit=settings.metrics_max_label_values),
        bodies=BodyBudget(settings.max_request_bytes_in_flight),
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        import_task_modules(settings.task_module_names)
        tasks = registry or with_http_task(default_registry, settings)
        async with AsyncExitStack() as stack:
            url, embedded = await asyncio.to_thread(open_database, settings)
            if embedded is not None:
                stack.push_async_callback(asyncio.to_thread, embedded.stop)
            if settings.auto_migrate:
                await asyncio.to_thread(upgrade_to_head, url, settings.db_statement_cache)
            engine = create_engine(
                url,
                settings.db_pool_size,
                settings.db_pool_timeout_seconds,
                statement_cache=settings.db_statement_cache,
            )
            stack.push_async_callback(engine.dispose)
            await _run(stack, state, settings, tasks, engine, url)
            log.info("service_started", version=__version__, tasks=tasks.names())
            try:
                yield
            finally:
                state.runtime = None

    app = create_fastapi(
        title="jobqueue",
        version=__version__,
        summary="A PostgreSQL-backed job queue service.",
        lifespan=lifespan,
    )
    app.state.jobqueue = state
    errors.install(app)
    app.include_router(health.router)
    app.include_router(metrics_routes.router)
    if settings.serves_api:
        app.include_router(jobs.router)
        app.include_router(queues.router)
        app.include_router(processes.router)
        app.include_router(schedules.router)
        app.include_router(leases.router)
        from jobqueue.api import ui  # the dashboard includes the jobs router again: import last

        ui.install(app)
    add_security_scheme(app)
    _add_middleware(app, state)
    return app


def _add_middleware(app: FastAPI, state: AppState) -> None:
    """The middleware, outermost first: request id, log and metrics (and the JSON 500); HEAD
    run as GET (``api/methods.py``); the docs pages' CSP; proxy headers; the host checks; the
    body limits; then FastAPI's own exception handling and the router, whose routes check the
    role before reading a body (``api/guard.py``)."""
    settings = state.settings
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_request_bytes,
        budget=state.bodies,
        metrics=state.metrics,
        timeout_seconds=settings.body_timeout_seconds,
    )
    app.add_middleware(HostGuard, access=state.access, metrics=state.metrics)
    app.add_middleware(ProxyHeaders, trusted=settings.forwarded_allow_list)
    app.add_middleware(DocsPolicy, paths=(DOCS_URL, app.swagger_ui_oauth2_redirect_url or DOCS_URL))
    app.add_middleware(HeadAsGet)
    app.add_middleware(RequestMiddleware, metrics=state.metrics)


async def _run(
    stack: AsyncExitStack,
    state: AppState,
    settings: Settings,
    tasks: TaskRegistry,
    engine: AsyncEngine,
    url: str,
) -> None:
    """Build the runtime, start its loops, and push their orderly stop onto ``stack``."""
    metrics = state.metrics
    metrics.reserve(settings.known_queue_names, tasks.names())
    supervisor = Supervisor(metrics)
    origin = protocol.new_origin()
    # Poll-only (JOBQUEUE_LISTEN=false): no LISTEN connection; the pool's poll and the waits'
    # re-reads every poll interval stand in for the notifications. With a listener the waits
    # re-read every poll interval too, but only while it hears nothing (see Reads.wait).
    listener = Listener(asyncpg_dsn(url), engine, origin) if settings.listen else None
    if listener is not None:
        supervisor.add("listen", listener.run)
    service = JobService(
        engine,
        tasks,
        job_defaults(settings),
        listener,
        metrics,
        origin,
        wait_poll_seconds=settings.poll_interval_seconds,
        max_waiting=settings.max_long_polls,
        max_page_bytes=settings.max_page_bytes,
    )
    stack.push_async_callback(service.close)
    remote = remote_leases(settings, engine, metrics, service.catalog.invalidate)
    service.add_enqueue_listener(remote.on_enqueued)
    if listener is not None:
        listener.subscribe(QueuesRunnable, remote.on_runnable)
        listener.on_connect(remote.waiters.wake_all)
    supervisor.add("lease-probe", remote.probe)
    metrics.lease_polls.set_function(lambda: len(remote.waiters))
    pool: WorkerPool | None = None
    if settings.runs_workers:
        pool = WorkerPool(
            engine,
            tasks,
            pool_config(settings),
            listener,
            metrics,
            on_finished=lambda ids: service.waiters.finished(JobsFinished(frozenset(ids))),
        )
        service.add_enqueue_listener(pool.on_enqueued)
        metrics.workers = pool.busy_slots
        for name, loop in pool.loops().items():
            supervisor.add(name, loop)
        pruner = Pruner(
            engine, retention_ages(settings), settings.retention_interval_seconds, metrics
        )
        if pruner.enabled:
            supervisor.add("pruner", pruner.run)

    # Every role rescues (one idempotent statement): a deployment of API processes and remote
    # workers only still gets its expired leases back.
    def rescued(queues: set[str]) -> None:
        remote.waiters.runnable(frozenset(queues))
        if pool is not None:
            pool.coordinator.wake(queues)

    rescuer = Rescuer(engine, settings.rescue_interval_seconds, rescued, metrics)
    supervisor.add("rescuer", rescuer.run)
    vacuum = Vacuum(engine, settings.vacuum_dead_rows, settings.vacuum_interval_seconds)
    if vacuum.enabled:  # every role: remote workers' claims leave dead rows too
        supervisor.add("vacuum", vacuum.run)
    if pool is not None:
        await _start_schedules(service, settings)
        supervisor.add("scheduler", Scheduler(service.schedules).run)
    registry = ProcessRegistry(
        engine,
        process_info(settings, pool, tasks),
        busy=(lambda: 0) if pool is None else (lambda: pool.busy_slots()[0]),
        finished=metrics.throughput.snapshot,
        on_catalog=service.catalog.update,
    )
    supervisor.add("registry", registry.run)
    await supervisor.start()
    if listener is not None:
        # Ready means listening, a ping having come back: a job enqueued by another process
        # right after start wakes us.
        await listener.wait_connected(LISTEN_START_TIMEOUT_SECONDS)
    else:
        log.info("listen_disabled", poll_interval_seconds=settings.poll_interval_seconds)

    stopped = False

    async def stop() -> None:
        nonlocal stopped
        if stopped:
            return
        stopped = True
        remote.drain()
        if pool is not None:
            await pool.drain()
        await supervisor.stop()
        if pool is not None:
            await asyncio.shield(pool.final_writes())
        await registry.withdraw()

    stack.push_async_callback(stop)
    state.runtime = Runtime(
        service=service,
        dashboard=DashboardService(
            engine, own=(registry.info.worker_id, metrics.throughput.snapshot)
        ),
        listener=listener,
        loops=supervisor,
        workers=None if pool is None else pool.busy_slots,
        head_revision=head_revision(),
        stop=stop,
        leases=remote,
        pool=pool,
    )


def remote_leases(
    settings: Settings, engine: AsyncEngine, metrics: Metrics, on_announced: Callable[[], None]
) -> RemoteLeases:
    """The lease API's use cases, with the limits and the retry policy of ``settings``."""
    return RemoteLeases(
        engine,
        RetryPolicy(settings.backoff_base_seconds, settings.backoff_max_seconds),
        metrics,
        default_lease_seconds=settings.lease_seconds,
        poll_seconds=settings.poll_interval_seconds,
        max_wait_seconds=settings.lease_max_wait_seconds,
        max_waiting=settings.max_long_polls,
        max_waiting_per_key=settings.max_lease_polls_per_key,
        max_result_bytes=settings.max_result_bytes,
        max_result_depth=settings.max_payload_depth,
        version=f"remote via {__version__}",
        on_announced=on_announced,
    )


def schedule_specs(settings: Settings) -> list[ScheduleSpec]:
    """The schedules of ``JOBQUEUE_SCHEDULES`` and ``JOBQUEUE_SCHEDULES_FILE``, checked as
    ``POST /schedules`` checks a body (the shape, the name, cron, time zone and payload size;
    the task and queue when a worker writes them at start).

    Raises:
        ConfigurationError: unreadable file, not a JSON list, a bad item, or a name twice.
    """
    texts = [("JOBQUEUE_SCHEDULES", settings.schedules)]
    if settings.schedules_file:
        try:
            texts.append((settings.schedules_file, Path(settings.schedules_file).read_text()))
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigurationError(f"JOBQUEUE_SCHEDULES_FILE: cannot read it: {exc}") from exc
    specs: list[ScheduleSpec] = []
    for source, text in texts:
        if not text.strip():
            continue
        try:
            document = loads_unique(text.encode())
        except (DuplicateKey, ValueError, RecursionError) as exc:
            raise ConfigurationError(f"{source}: not a JSON list of schedules: {exc}") from None
        try:
            items = SCHEDULE_LIST.validate_python(document, strict=True)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise ConfigurationError(
                f"{source}: give a JSON list of schedules; at {where or 'the top'}: {first['msg']}"
            ) from None
        for item in items:
            spec = item.spec()
            try:
                check_definition(spec)
            except InvalidJobRequest as exc:
                raise ConfigurationError(f"{source}: schedule {spec.name!r}: {exc}") from None
            specs.append(spec)
    names = [spec.name for spec in specs]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ConfigurationError(f"schedules named twice in the settings: {', '.join(twice)}")
    return specs


async def _start_schedules(service: JobService, settings: Settings) -> None:
    """Write the settings' schedules (a worker process does, at each start).

    Raises:
        ConfigurationError: a bad schedule (the message names it).
    """
    specs = schedule_specs(settings)
    if specs:
        await service.catalog.refresh()  # the tasks and queues other live processes announce
    try:
        await service.schedules.sync(specs)
    except InvalidJobRequest as exc:
        raise ConfigurationError(f"JOBQUEUE_SCHEDULES: {exc}") from exc
    if specs:
        log.info("schedules_written", schedules=[spec.name for spec in specs])


def job_defaults(settings: Settings) -> JobDefaults:
    """Per-job defaults and limits from settings; the known queues are ``JOBQUEUE_QUEUES`` and
    ``JOBQUEUE_REMOTE_QUEUES`` (an API-only process reads the same settings)."""
    return JobDefaults(
        max_attempts=settings.max_attempts,
        timeout_seconds=settings.default_timeout_seconds,
        max_payload_bytes=settings.max_payload_bytes,
        max_payload_depth=settings.max_payload_depth,
        known_queues=settings.known_queue_names,
        remote_tasks=frozenset(parse_names(settings.remote_tasks)),
        remote_queues=frozenset(parse_names(settings.remote_queues)),
    )


def retention_ages(settings: Settings) -> dict[JobStatus, float]:
    """Seconds each finished status is kept, from ``JOBQUEUE_RETENTION_*_SECONDS`` (0: for
    ever)."""
    return {
        JobStatus.DONE: settings.retention_done_seconds,
        JobStatus.CANCELLED: settings.retention_cancelled_seconds,
        JobStatus.FAILED: settings.retention_failed_seconds,
    }


def process_info(settings: Settings, pool: WorkerPool | None, tasks: TaskRegistry) -> ProcessInfo:
    """What this process announces in the registry: an API-only process serves no queue and
    runs no task, and gets an id of the same form as a pool's."""
    return ProcessInfo(
        worker_id=new_worker_id() if pool is None else pool.config.worker_id,
        host=socket.gethostname(),
        pid=os.getpid(),
        version=__version__,
        queues=() if pool is None else tuple(pool.config.queues),
        tasks=() if pool is None else tuple(tasks.names()),
        slots=() if pool is None else tuple(pool.config.queues.items()),
        role=settings.role if settings.runs_workers else "api",
    )


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


def pool_config(settings: Settings) -> PoolConfig:
    """The worker pool's configuration from settings."""
    return PoolConfig(
        queues=settings.queue_concurrency,
        lease_seconds=settings.lease_seconds,
        poll_interval_seconds=settings.poll_interval_seconds,
        shutdown_grace_seconds=settings.shutdown_grace_seconds,
        retry=RetryPolicy(settings.backoff_base_seconds, settings.backoff_max_seconds),
        max_result_bytes=settings.max_result_bytes,
        max_result_depth=settings.max_payload_depth,
        log_payloads=settings.log_payloads,
    )
