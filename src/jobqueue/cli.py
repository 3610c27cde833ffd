"""The ``jobqueue`` command (typer): serve, worker, api, remote-worker, migrate, enqueue,
enqueue-batch, get, list, attempts, cancel, retry, queues, pause, resume, workers, schedules.

``serve`` (API and workers), ``worker`` (workers only), ``api`` (API only) and ``migrate`` talk
to the database; ``remote-worker`` runs Python tasks over the HTTP lease API
(:class:`jobqueue.client.Worker`); the others are clients of a running service through
:class:`jobqueue.client.JobQueue` (``--url``, default ``http://127.0.0.1:8000``), so they work
from any machine that can reach it. When the service has ``JOBQUEUE_API_KEYS``, give them a key with
``--key`` (or ``JOBQUEUE_CLIENT_KEY``).

Exit codes: 0 done; 1 the database cannot be used (``serve`` and ``migrate``: it cannot be
reached, does not exist or refuses the login; a client command: the service answered 503, e.g.
because its database is down), said in one line on stderr with a hint, never a traceback or the
URL's password; 2 anything else that went wrong: a usage error (an option out of its range names
the bound it breaks), invalid settings (one line per variable), an answer of 4xx or 5xx, a
service that cannot be reached.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError

from jobqueue.client import (
    ApiError,
    ConnectionFailed,
    JobQueue,
    JobQueueClientError,
    ServiceUnavailable,
    Unauthorized,
)
from jobqueue.encoding import MAX_ID
from jobqueue.errors import ConfigurationError, DatabaseUnavailable
from jobqueue.settings import (
    TEN_YEARS_SECONDS,
    Settings,
    configured_variable_names,
    settings_errors,
    unknown_variables,
)

# The server side (FastAPI, SQLAlchemy, uvicorn) is imported inside `serve` and `migrate` only:
# the client commands start in a fraction of the time without it.

app = typer.Typer(help="jobqueue: a PostgreSQL-backed job queue service.", no_args_is_help=True)

ServiceUrl = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar="JOBQUEUE_URL",
        help="Base URL of a running service (default: http://JOBQUEUE_HOST:JOBQUEUE_PORT).",
        show_default=False,
    ),
]
ServiceKey = Annotated[
    str | None,
    typer.Option(
        "--key",
        envvar="JOBQUEUE_CLIENT_KEY",
        help="API key sent as 'Authorization: Bearer <key>' (needed when the service has "
        "JOBQUEUE_API_KEYS).",
        show_default=False,
    ),
]


# The API's bounds (api/schemas.py, api/routes/jobs.py), so that the CLI refuses what the
# service would refuse, as a usage error naming the bound (tests/unit/test_cli_options.py).
MAX_PRIORITY = 100
MAX_ATTEMPTS = 1000
MAX_TIMEOUT_SECONDS = 86_400
MAX_WAIT_SECONDS = 60
MAX_PAGE_SIZE = 1000

JobIdArgument = Annotated[int, typer.Argument(help="The job's id.", min=1, max=MAX_ID)]


def _above_zero(maximum: float) -> Callable[[float | None], float | None]:
    """An option callback that also refuses 0 (typer's ``min`` includes its bound), with
    click's words for a range: ``0 is not in the range 0<x<=60``."""

    def check(value: float | None) -> float | None:
        if value is not None and value == 0:
            raise typer.BadParameter(f"{value:g} is not in the range 0<x<={maximum:g}.")
        return value

    return check


def _fail(message: str, code: int = 2) -> NoReturn:
    """Print ``error: <message>`` on stderr and exit with ``code`` (2 unless said)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=code)


def _settings(**overrides: Any) -> Settings:
    """The settings from the environment and ``.env`` (``overrides`` on top); exit 2 with one
    line per problem, each naming its variable, when they are not valid."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        for line in settings_errors(exc):
            typer.echo(f"error: invalid setting: {line}", err=True)
        raise typer.Exit(code=2) from None
    except ValueError as exc:
        _fail(f"invalid settings: {exc}")


Host = Annotated[str | None, typer.Option(help="Bind address (JOBQUEUE_HOST).")]
Port = Annotated[int | None, typer.Option(help="Port (JOBQUEUE_PORT).", min=1, max=65535)]


def _warn_unknown_variables() -> None:
    """Log a warning for each ``JOBQUEUE_*`` variable (environment or ``.env``) that jobqueue
    does not read, with the one it most likely means. Never refuses: a newer release may read
    it."""
    import structlog

    log = structlog.get_logger("jobqueue.settings")
    for name, meant in unknown_variables(configured_variable_names(os.environ)):
        guess = f": did you mean {meant}?" if meant else ""
        log.warning(
            "setting_unknown",
            variable=name,
            did_you_mean=meant,
            detail=f"{name} is not a jobqueue setting and is ignored{guess} (.env.example lists "
            "every setting)",
        )


def _check_database(settings: Settings) -> None:
    """Open one connection to ``JOBQUEUE_DATABASE_URL`` (nothing to check when it is unset: the
    embedded server is started later). Exits 1 with one line and a hint when the database
    cannot be used, 2 when the URL itself is wrong."""
    from jobqueue.db.reach import check_database

    url = settings.database_url_value
    if url is None:
        return
    try:
        check_database(url, statement_cache=settings.db_statement_cache)
    except DatabaseUnavailable as exc:
        _fail(str(exc), code=1)
    except ConfigurationError as exc:
        _fail(str(exc))


@app.command()
def serve(host: Host = None, port: Port = None) -> None:
    """Run the API and the worker pool (embedded PostgreSQL when JOBQUEUE_DATABASE_URL is unset).

    It first opens one connection to JOBQUEUE_DATABASE_URL: a database that cannot be reached,
    does not exist or refuses the login stops it (exit 1, one line with a hint). Once running,
    an outage is retried (/readyz answers 503 meanwhile). Without JOBQUEUE_API_KEYS it listens
    on loopback only: another address is refused (exit 2) unless JOBQUEUE_INSECURE=true. An
    IPv6 address may be written with or without brackets (``[::1]``). The HTTP server's limits
    (connections, timeouts, header bounds) are in ``api/server.py`` and docs/security.md. Stops
    gracefully on SIGTERM or Ctrl-C: running jobs get JOBQUEUE_SHUTDOWN_GRACE_SECONDS.
    JOBQUEUE_ROLE (default serve) may make it a worker or api process, like the commands of
    those names.
    """
    _serve(None, host, port)


@app.command()
def worker(host: Host = None, port: Port = None) -> None:
    """Run workers and maintenance only (JOBQUEUE_ROLE=worker): no jobs API and no dashboard;
    /healthz, /readyz and /metrics answer on --host/--port. Run it beside `jobqueue api`
    processes on the same database (README, "Operating it")."""
    _serve("worker", host, port)


@app.command()
def api(host: Host = None, port: Port = None) -> None:
    """Run the API and the dashboard only (JOBQUEUE_ROLE=api): jobs wait for `jobqueue worker`
    or `jobqueue serve` processes on the same database."""
    _serve("api", host, port)


class LogLevel(StrEnum):
    """``--log-level`` of ``remote-worker``."""

    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


@app.command("remote-worker")
def remote_worker(
    tasks: Annotated[
        str,
        typer.Option(
            help="Comma-separated modules to import, e.g. myapp.tasks: their @remote_task "
            "functions are the tasks run.",
            show_default=False,
        ),
    ],
    queues: Annotated[str, typer.Option(help="Comma-separated queues, in order.")] = "default",
    concurrency: Annotated[int, typer.Option(help="Jobs run at once.", min=1, max=1000)] = 10,
    name: Annotated[
        str | None,
        typer.Option(
            help="Name on the dashboard, unique per process (default: <hostname>-<pid>-<random>).",
            show_default=False,
        ),
    ] = None,
    lease_seconds: Annotated[
        float, typer.Option(help="Each lease's length, seconds.", min=1, max=3600)
    ] = 30.0,
    grace_seconds: Annotated[
        float,
        typer.Option(help="At SIGTERM, how long running jobs may take, seconds.", min=0),
    ] = 10.0,
    url: ServiceUrl = None,
    key: ServiceKey = None,
    log_level: Annotated[
        LogLevel,
        typer.Option(
            envvar="JOBQUEUE_LOG_LEVEL",
            help="info logs a line per job; warning only problems (JOBQUEUE_LOG_LEVEL).",
        ),
    ] = LogLevel.INFO,
) -> None:
    """Run Python tasks on jobs leased from a running service over the HTTP lease API
    (docs/workers.md, "Python worker"); needs only the service's URL and a worker key.

    Each --tasks module registers its functions with @remote_task("name") from
    jobqueue.client. Runs until SIGTERM or Ctrl-C, then stops leasing, gives running jobs
    --grace-seconds to finish and releases the rest; a second signal cuts the grace short.
    Exit codes: 0 after SIGTERM (130 after Ctrl-C); 2 when a module cannot be imported or
    registers no task, or an option is out of range.
    """
    import logging

    from jobqueue.client._worker import Worker, default_tasks, import_task_modules

    try:
        import_task_modules(_names(tasks))
    except ImportError as exc:
        _fail(str(exc))
    if not len(default_tasks):
        _fail(f"--tasks {tasks}: no @remote_task function registered (see docs/workers.md)")
    _finite(lease_seconds, "--lease-seconds")
    _finite(grace_seconds, "--grace-seconds")
    try:
        runner = Worker(
            _base(url),
            key,
            queues=_names(queues),
            concurrency=concurrency,
            name=name,
            lease_seconds=lease_seconds,
            grace_seconds=grace_seconds,
            tasks=default_tasks,
        )
    except ValueError as exc:
        _fail(str(exc))
    logging.basicConfig(
        level=getattr(logging, log_level.value.upper()),
        format="%(asctime)s %(levelname)s %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request otherwise
    stopped_by = runner.run_sync()
    _exit_now(130 if stopped_by == signal.SIGINT else 0)


def _names(text: str) -> list[str]:
    """``a, b,c`` → ``["a", "b", "c"]``."""
    return [part.strip() for part in text.split(",") if part.strip()]


def _serve(role: str | None, host: str | None, port: int | None) -> None:
    """Run the HTTP server with the app of ``role`` (None: ``JOBQUEUE_ROLE``); see
    :func:`serve`."""
    import uvicorn

    from jobqueue.api.app import create_app, schedule_specs
    from jobqueue.api.server import Server, bind_address, prepare, uvicorn_options
    from jobqueue.api.state import state_of
    from jobqueue.logs import configure_logging

    settings = _settings() if role is None else _settings(role=role)
    try:
        schedule_specs(settings)  # a bad JOBQUEUE_SCHEDULES stops here, before any database work
    except ConfigurationError as exc:
        _fail(str(exc))
    configure_logging(settings.log_format, settings.log_level)
    _warn_unknown_variables()
    host = bind_address(host or settings.host)
    _refuse_open_bind(settings, host)
    _check_database(settings)
    _log_access(settings, host)
    prepare(settings)
    # uvicorn shuts down gracefully on SIGTERM or SIGINT (the lifespan: drain, final writes,
    # release), then re-raises the signal with the handler that was in place before it
    # started. These end the process there and then: a clean stop exits 0 (130 after Ctrl-C),
    # as supervisors expect, and never waits for a task that ignores cancellation (asyncio's
    # own exit would wait for every task left, for ever).
    signal.signal(signal.SIGTERM, lambda *_: _exit_now(0))
    signal.signal(signal.SIGINT, lambda *_: _exit_now(130))
    try:
        app = create_app(settings)
        config = uvicorn.Config(
            app,
            host=host,
            port=port or settings.port,
            **uvicorn_options(settings, state_of(app).metrics),
        )

        def drain_remote_workers() -> None:
            runtime = state_of(app).runtime
            if runtime is not None:
                runtime.leases.drain()

        server = Server(config, on_exit=drain_remote_workers)
        with contextlib.suppress(KeyboardInterrupt):
            server.run()
        if not server.started:
            raise SystemExit(3)  # uvicorn's STARTUP_FAILURE, as uvicorn.run exits
    except ConfigurationError as exc:
        _fail(str(exc))


def _exit_now(code: int) -> NoReturn:
    """End the process after the graceful shutdown: flush what was logged, skip the rest."""
    import logging

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _refuse_open_bind(settings: Settings, host: str) -> None:
    """Refuse a non-loopback ``host`` without keys.

    Exits with code 2 when no key is configured, ``host`` is not loopback (``127.0.0.1``,
    ``::1``, ``localhost``) and ``JOBQUEUE_INSECURE`` is not true.
    """
    from jobqueue.access import is_loopback_host

    if settings.api_key_list or is_loopback_host(host) or settings.insecure:
        return
    _fail(
        f"refusing to listen on {host!r} without API keys: anyone who can reach it could "
        "read, create, cancel and retry jobs. Set JOBQUEUE_API_KEYS (see docs/security.md), "
        "or listen on 127.0.0.1, or set JOBQUEUE_INSECURE=true to allow it anyway"
    )


def _log_access(settings: Settings, host: str) -> None:
    """Say in the log how access works (after :func:`_refuse_open_bind`). Key names and roles
    are logged, never the keys."""
    import structlog

    from jobqueue.access import is_loopback_host

    log = structlog.get_logger("jobqueue.access")
    keys = settings.api_key_list
    if keys:
        log.info(
            "access_keys",
            detail="requests need an API key (Authorization: Bearer) or a dashboard session",
            keys=[f"{key.name}:{key.role}" for key in keys],
            metrics_require_key=settings.metrics_require_key,
        )
        return
    if is_loopback_host(host):
        log.info(
            "access_open",
            host=host,
            detail="no JOBQUEUE_API_KEYS: every request is allowed, so the service listens on "
            "loopback only (set JOBQUEUE_API_KEYS to listen elsewhere)",
        )
        return
    log.warning(
        "access_insecure",
        host=host,
        detail="no JOBQUEUE_API_KEYS and JOBQUEUE_INSECURE=true: every request that reaches "
        "this address is allowed, from any machine",
    )


@app.command()
def migrate() -> None:
    """Migrate the database to the newest schema (a no-op when it is current).

    A database that cannot be reached, does not exist or refuses the login: exit 1, one line
    with a hint.
    """
    from jobqueue.api.app import open_database
    from jobqueue.db.engine import CONNECT_ERRORS
    from jobqueue.db.migrations import upgrade_to_head
    from jobqueue.db.reach import explain_connect_error
    from jobqueue.logs import configure_logging

    settings = _settings()
    configure_logging(settings.log_format, settings.log_level)
    _warn_unknown_variables()
    _check_database(settings)
    try:
        url, embedded = open_database(settings)
    except ConfigurationError as exc:
        _fail(str(exc))
    try:
        upgrade_to_head(url, settings.db_statement_cache)
    except CONNECT_ERRORS as exc:
        # Reachable a moment ago (the check above), gone now: still one line, not a traceback.
        message = explain_connect_error(exc, url)
        if message is None:
            raise
        _fail(message, code=1)
    finally:
        if embedded is not None:
            embedded.stop()
    typer.echo("database is at the newest revision")


@contextmanager
def _client(url: str | None, key: str | None) -> Iterator[JobQueue]:
    """A :class:`JobQueue` for ``--url`` and ``--key``; an error it raises in the ``with``
    block ends the command with one line on stderr: exit 1 for a 503 (the service cannot
    serve now), 2 for anything else. The CLI sends each request once (``retries=0``): a
    person at a terminal gets the answer at once and retries when they want to."""
    try:
        with JobQueue(_base(url), key, timeout=30.0, retries=0) as client:
            yield client
    except ConnectionFailed as exc:
        _fail(f"cannot reach {_where(exc)}: {exc.reason} (is `jobqueue serve` running? see --url)")
    except Unauthorized as exc:
        _fail(f"401: {_text(exc)} (give the CLI a key: --key or JOBQUEUE_CLIENT_KEY)")
    except ServiceUnavailable as exc:
        detail = exc.detail if isinstance(exc.detail, str) else _text(exc)
        _fail(
            f"503 from {_where(exc)}: {' '.join(detail.split())} (the service runs but "
            "cannot serve this now, e.g. its database is down: its /readyz says which check "
            "fails; retry later)",
            code=1,
        )
    except ApiError as exc:
        _fail(f"{exc.status_code}: {_text(exc)}")
    except JobQueueClientError as exc:
        _fail(str(exc))


def _where(exc: ApiError | ConnectionFailed) -> str:
    """The URL of the request that failed, without its query."""
    return "the service" if exc.request is None else str(exc.request.url.copy_with(query=None))


def _text(exc: ApiError) -> str:
    """An error answer's body as the service sent it."""
    return exc.response.text if exc.response is not None else str(exc.detail)


def _print(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False))


def _base(url: str | None) -> str:
    """``--url``, else the address ``jobqueue serve`` binds with the same settings (a wildcard
    bind address is reached on loopback)."""
    if url:
        return url.rstrip("/")
    settings = _settings()
    host = settings.host.strip().strip("[]")
    host = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}"


def _finite(value: float | None, option: str) -> float | None:
    if value is not None and not math.isfinite(value):
        _fail(f"{option} must be a finite number, got {value}")
    return value


def _load_json(text: str, what: str) -> Any:
    """``text`` parsed as the API parses a body: a key named twice, NaN or Infinity (not
    JSON, RFC 8259 section 6) end the command with exit 2 and a message naming ``what``."""
    from jobqueue.api.bodies import loads_unique
    from jobqueue.errors import DuplicateKey

    try:
        value = loads_unique(text.encode("utf-8", "surrogatepass"))
    except DuplicateKey as exc:
        _fail(f"{what}: {exc}")
    except (ValueError, RecursionError) as exc:
        _fail(f"{what} is not valid JSON: {exc}")
    try:
        json.dumps(value, allow_nan=False)  # NaN, Infinity and 1e999 parse, but are not JSON
    except (ValueError, RecursionError):
        _fail(f"{what} holds NaN, Infinity or a number too large for a float: not JSON")
    return value


def _json_object(text: str, option: str) -> dict[str, Any]:
    value = _load_json(text, option)
    if not isinstance(value, dict):
        _fail(f"{option} must be a JSON object, e.g. '{{\"seconds\": 2}}'")
    return value


@app.command()
def enqueue(
    task: Annotated[str, typer.Argument(help="Task name, e.g. echo, sleep, fail, http.")],
    payload: Annotated[str, typer.Option(help="Payload as a JSON object.")] = "{}",
    queue: Annotated[str, typer.Option(help="Queue name.")] = "default",
    priority: Annotated[
        int,
        typer.Option(help="Higher runs first.", min=-MAX_PRIORITY, max=MAX_PRIORITY),
    ] = 0,
    description: Annotated[str | None, typer.Option(help="Free text.")] = None,
    max_attempts: Annotated[
        int | None, typer.Option(help="Attempts in all.", min=1, max=MAX_ATTEMPTS)
    ] = None,
    timeout_seconds: Annotated[
        float | None,
        typer.Option(
            help="Per attempt, seconds (above 0).",
            min=0,
            max=MAX_TIMEOUT_SECONDS,
            callback=_above_zero(MAX_TIMEOUT_SECONDS),
        ),
    ] = None,
    delay_seconds: Annotated[
        float | None,
        typer.Option(help="First run after, seconds.", min=0, max=TEN_YEARS_SECONDS),
    ] = None,
    run_at: Annotated[
        str | None, typer.Option(help="First run at, RFC 3339 with offset (2030-01-01T09:00Z).")
    ] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Same key, same request: one job.")
    ] = None,
    url: ServiceUrl = None,
    key: ServiceKey = None,
) -> None:
    """Create a job and print it as JSON.

    An option outside the API's range (``--priority`` -100..100, ``--max-attempts`` 1..1000,
    ``--timeout-seconds`` above 0 up to 86400, ``--delay-seconds`` 0 up to ten years) is a
    usage error (exit 2) naming the bound; NaN or infinity is refused too.
    """
    body = _json_object(payload, "--payload")
    timeout_seconds = _finite(timeout_seconds, "--timeout-seconds")
    delay_seconds = _finite(delay_seconds, "--delay-seconds")
    with _client(url, key) as client:
        job = client.enqueue(
            task,
            body,
            queue=queue,
            priority=priority,
            description=description,
            max_attempts=max_attempts,
            timeout_seconds=timeout_seconds,
            delay_seconds=delay_seconds,
            run_at=run_at,
            idempotency_key=idempotency_key or None,
        )
    _print(job.raw)


@app.command("enqueue-batch")
def enqueue_batch(
    file: Annotated[
        typer.FileText, typer.Argument(help='JSON file ({"jobs": [...]} or a list); - for stdin.')
    ],
    url: ServiceUrl = None,
    key: ServiceKey = None,
) -> None:
    """Create up to 10,000 jobs all or nothing; prints their ids, one a line."""
    body = _load_json(file.read(), file.name)
    jobs = body.get("jobs") if isinstance(body, dict) and set(body) == {"jobs"} else body
    if not isinstance(jobs, list) or not all(isinstance(job, dict) for job in jobs):
        _fail(f'{file.name} must hold a list of job objects, or {{"jobs": [...]}}')
    with _client(url, key) as client:
        ids = client.enqueue_many(jobs)
    for job_id in ids:
        typer.echo(job_id)


@app.command()
def get(
    job_id: JobIdArgument,
    wait: Annotated[
        float | None,
        typer.Option(
            help="Wait up to this many seconds (above 0) for the result.",
            min=0,
            max=MAX_WAIT_SECONDS,
            callback=_above_zero(MAX_WAIT_SECONDS),
        ),
    ] = None,
    url: ServiceUrl = None,
    key: ServiceKey = None,
) -> None:
    """Print one job as JSON (with --wait, once it is done, failed or cancelled)."""
    wait = _finite(wait, "--wait")
    with _client(url, key) as client:
        job = client.get(job_id, wait_seconds=wait)
    _print(job.raw)


@app.command()
def attempts(
    job_id: JobIdArgument,
    url: ServiceUrl = None,
    key: ServiceKey = None,
) -> None:
    """Print every attempt of a job: number, outcome, worker, error."""
    with _client(url, key) as client:
        found = client.attempts(job_id)
    for attempt in found:
        error = f"  {attempt.error_type}: {attempt.error_message}" if attempt.error_type else ""
        typer.echo(f"{attempt.attempt:>3}  {attempt.outcome:<10} {attempt.worker_id}{error}")


@app.command()
def cancel(
    job_id: JobIdArgument,
    url: ServiceUrl = None,
    key: ServiceKey = None,
) -> None:
    """Cancel a todo job, or ask the worker running it to stop; prints the job."""
    with _client(url, key) as client:
        job = client.cancel(job_id)
    _print(job.raw)


@app.command()
def retry(
    job_id: JobIdArgument,
    url: ServiceUrl = None,
    key: ServiceKey = None,
) -> None:
    """Put a failed or cancelled job back to todo with fresh attempts; prints the job."""
    with _client(url, key) as client:
        job = client.retry(job_id)
    _print(job.raw)


@app.command("list")
def list_jobs(
    status: Annotated[str | None, typer.Option(help="todo, in_progress, done, failed…")] = None,
    queue: Annotated[str | None, typer.Option(help="Only this queue.")] = None,
    task: Annotated[str | None, typer.Option(help="Only this task.")] = None,
    limit: Annotated[int, typer.Option(help="Jobs per page.", min=1, max=MAX_PAGE_SIZE)] = 20,
    cursor: Annotated[str | None, typer.Option(help="The next page: a printed cursor.")] = None,
    url: ServiceUrl = None,
    key: ServiceKey = None,
) -> None:
    """Print the newest jobs, one line each: id, status, queue, task, attempts."""
    with _client(url, key) as client:
        page = client.list_page(
            status=status or None,
            queue=queue or None,
            task=task or None,
            limit=limit,
            cursor=cursor or None,
        )
    for job in page.items:
        typer.echo(
            f"{job.id:>8}  {job.status:<12} {job.queue:<12} {job.task:<12} "
            f"attempts={job.attempts}/{job.max_attempts}"
        )
    if page.next_cursor:
        typer.echo(f"more: --cursor {page.next_cursor}", err=True)


QueueArg = Annotated[str, typer.Argument(help="The queue's name.")]


@app.command()
def queues(url: ServiceUrl = None, key: ServiceKey = None) -> None:
    """Print every queue, one line each: name, paused, slots online, jobs per status, and how
    long its oldest due job has waited."""
    with _client(url, key) as client:
        found = client.queues()
    for queue in found:
        counts = " ".join(f"{status}={n}" for status, n in queue.counts.items())
        oldest = queue.oldest_due_seconds
        waited = "-" if oldest is None else f"{oldest:.1f}s"
        state = "paused" if queue.paused else "active"
        typer.echo(
            f"{queue.name:<20} {state:<7} slots={queue.slots_online:<4} {counts}  "
            f"oldest_due={waited}"
        )


@app.command()
def pause(queue: QueueArg, url: ServiceUrl = None, key: ServiceKey = None) -> None:
    """Pause a queue: no process claims its jobs until it is resumed (admin)."""
    with _client(url, key) as client:
        state = client.pause(queue)
    _print(state.raw)


@app.command()
def resume(queue: QueueArg, url: ServiceUrl = None, key: ServiceKey = None) -> None:
    """Resume a paused queue (admin)."""
    with _client(url, key) as client:
        state = client.resume(queue)
    _print(state.raw)


@app.command()
def workers(url: ServiceUrl = None, key: ServiceKey = None) -> None:
    """Print the live processes, one line each: id, role, busy/total slots, queues, last seen."""
    with _client(url, key) as client:
        listing = client.workers()
    for process in listing.items:
        slots = sum(process.queues.values())
        served = ",".join(f"{q}={n}" for q, n in process.queues.items()) or "-"
        typer.echo(
            f"{process.worker_id:<32} {process.role:<6} busy={process.busy}/{slots} "
            f"queues={served} seen={process.raw['seen_at']}"
        )
    typer.echo(f"{len(listing.items)} processes, busy {listing.busy}/{listing.slots}")


@app.command()
def schedules(url: ServiceUrl = None, key: ServiceKey = None) -> None:
    """Print every schedule, one line each: name, cron and time zone, task, next and last run."""
    with _client(url, key) as client:
        found = client.schedules()
    for schedule in found:
        state = "paused" if schedule.paused else "active"
        typer.echo(
            f"{schedule.name:<24} {state:<7} {schedule.cron!r} {schedule.timezone} "
            f"task={schedule.task} next={schedule.raw['next_run_at']} "
            f"last={schedule.raw['last_run_at'] or '-'}"
        )
