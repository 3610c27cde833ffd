"""Service settings: environment variables with the ``JOBQUEUE_`` prefix, and a ``.env`` file.

Built once, in ``create_app`` or the CLI, and passed down as arguments: no module reads settings
from a global. Every variable, its default and its unit is listed in ``.env.example``. A value
out of range, or values that contradict each other, are refused (:func:`settings_errors` words
the refusal); a ``JOBQUEUE_*`` variable that is no setting is not, but the CLI logs it with the
setting it most likely means (:func:`unknown_variables`).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Literal

from pydantic import (
    AliasChoices,
    Field,
    PositiveFloat,
    PositiveInt,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, DotEnvSettingsSource, SettingsConfigDict

from jobqueue.access import MIN_SESSION_SECRET_LENGTH, ApiKey, parse_api_keys
from jobqueue.jobs import QUEUE_NAME_PATTERN, TASK_NAME_PATTERN

_TASK_NAME = re.compile(TASK_NAME_PATTERN)
_QUEUE_NAME = re.compile(QUEUE_NAME_PATTERN)

ENV_PREFIX = "JOBQUEUE_"
"""The prefix of every setting's environment variable (``FORWARDED_ALLOW_IPS`` aside)."""

MIN_LEASE_SECONDS = 1.0
"""The shortest ``JOBQUEUE_LEASE_SECONDS``. The heartbeat renews a lease every third of it, so a
renewal has two thirds of the lease to reach PostgreSQL before the lease runs out: 0.67 s at
1 s. Below that, ordinary delays (a pool wait, a slow commit, a task that blocks the event loop
for a few hundred milliseconds) lose leases of healthy jobs, which then run again elsewhere."""

MAX_CONCURRENCY = 1000
"""The most worker slots one process runs (``JOBQUEUE_CONCURRENCY``, and a queue's ``name=N``)."""

MAX_PAYLOAD_DEPTH = 200
"""The highest ``JOBQUEUE_MAX_PAYLOAD_DEPTH``: pydantic-core's JSON serializer refuses values
nested deeper than about 255 levels, so a deeper payload (or result) could be stored but every
response that carries it would fail. 200 leaves room for the levels a response adds."""


def parse_names(value: str) -> list[str]:
    """Split a comma-separated list, dropping blanks and surrounding spaces.

    Args:
        value: e.g. ``"default, emails"``.

    Returns:
        e.g. ``["default", "emails"]``, in the given order, without duplicates.
    """
    names: list[str] = []
    for part in value.split(","):
        name = part.strip()
        if name and name not in names:
            names.append(name)
    return names


def parse_queues(value: str, default_concurrency: int) -> dict[str, int]:
    """Parse ``JOBQUEUE_QUEUES``: ``"default=10,emails=2"`` → ``{"default": 10, "emails": 2}``.

    A name without ``=N`` gets ``default_concurrency`` slots.

    Raises:
        ValueError: no queue, a name that is not 1-100 of ``A-Za-z0-9_.:-``, a name given
            twice, or N not an integer from 1 to :data:`MAX_CONCURRENCY`; the message says which.
    """
    queues: dict[str, int] = {}
    for item in parse_names(value):
        name, sep, number = (part.strip() for part in item.partition("="))
        if not _QUEUE_NAME.match(name):
            raise ValueError(f"queue name {name!r} is not valid: use 1-100 letters, digits, '_.:-'")
        slots = default_concurrency
        if sep:
            valid = number.isascii() and number.isdigit() and 1 <= int(number) <= MAX_CONCURRENCY
            if not valid:
                raise ValueError(
                    f"queue {name!r}: concurrency must be 1 to {MAX_CONCURRENCY}, got {number!r}"
                )
            slots = int(number)
        if name in queues:
            raise ValueError(f"queue {name!r} is given twice: give each queue once")
        queues[name] = slots
    if not queues:
        raise ValueError("give at least one queue name, e.g. JOBQUEUE_QUEUES=default")
    return queues


TEN_YEARS_SECONDS = 366 * 86_400 * 10
"""The longest delay a setting may name, in seconds (as the API's ``delay_seconds``)."""


class Settings(BaseSettings):
    """All settings of one jobqueue process.

    Secrets (``api_keys``, ``session_secret``, ``http_signing_secret``, ``database_url``, which
    may hold a password) are :class:`pydantic.SecretStr`: ``repr``, ``str`` and logs show
    ``**********``, and validation errors never echo an input (``hide_input_in_errors``).

    Raises:
        pydantic.ValidationError: on a value of the wrong type or out of range, or values that
            contradict each other (a request limit below the payload limit, a queue both served
            and remote); :func:`settings_errors` gives one line per problem, naming the variable.
    """

    model_config = SettingsConfigDict(
        env_prefix="JOBQUEUE_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        hide_input_in_errors=True,
    )

    database_url: SecretStr | None = Field(
        default=None,
        description="SQLAlchemy URL, e.g. postgresql+asyncpg://user:pw@host:5432/db. "
        "Unset: start an embedded PostgreSQL under data_dir.",
    )
    data_dir: Path = Field(default=Path(".jobqueue"), description="Embedded PostgreSQL data.")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    concurrency: PositiveInt = Field(
        default=10,
        description=f"Worker tasks in this process, 1 to {MAX_CONCURRENCY} (more: run more "
        "processes).",
    )
    queues: str = Field(
        default="default",
        description="Queues this process runs, comma-separated; `name=N` gives a queue N slots "
        "of its own (default: JOBQUEUE_CONCURRENCY), e.g. `default=10,emails=2`.",
    )
    remote_queues: str = Field(
        default="",
        description="Queues that other processes serve, comma-separated: this one accepts jobs "
        "for them but does not run them. With JOBQUEUE_QUEUES they are the queues a job may "
        "name (any other is a 422); a queue may not be in both.",
    )
    remote_tasks: str = Field(
        default="",
        description="Tasks that other processes run, comma-separated: this one accepts jobs of "
        "them without importing their module (no enqueue-time payload check), but never "
        "claims them. For API-only processes and rolling deploys.",
    )
    lease_seconds: PositiveFloat = Field(
        default=30.0,
        description=f"Lease of a claimed job, s; at least {MIN_LEASE_SECONDS:g}. The heartbeat "
        "renews it every third, so a renewal has two thirds of the lease to reach PostgreSQL "
        "(0.67 s at the minimum); a shorter lease is lost to ordinary database delays and its "
        "job runs again.",
    )
    poll_interval_seconds: PositiveFloat = Field(default=1.0, description="Safety-net poll, s.")
    shutdown_grace_seconds: float = Field(default=30.0, ge=0, description="Drain time, s.")
    task_modules: str = Field(default="", description="Comma-separated modules to import.")
    auto_migrate: bool = True
    max_payload_bytes: PositiveInt = Field(default=1_048_576, description="JSON payload, bytes.")
    max_result_bytes: int = Field(
        default=1_048_576,
        ge=1,
        le=255 * 1_048_576,
        description="A task's result as compact JSON, bytes; a larger one fails the attempt and "
        "is not stored (at most 255 MiB: PostgreSQL's jsonb holds less than 256 MiB).",
    )
    max_page_bytes: PositiveInt = Field(
        default=8 * 1_048_576,
        description="Payload and result JSON of the jobs of one GET /jobs page together, bytes; "
        "a page stops before the job that would pass it (one job is always listed).",
    )
    max_payload_depth: int = Field(
        default=64,
        ge=1,
        description="Nesting levels of objects and arrays in a payload (the payload object is "
        "1), 1 to 200; it bounds a task's result too: a result nested deeper fails its attempt. "
        "At most 200 because pydantic-core's JSON serializer fails at about 255 levels.",
    )
    max_request_bytes: PositiveInt = Field(
        default=16 * 1_048_576,
        description="Request body, bytes, refused with 413 before it is parsed (a 10,000-job "
        "batch of 1.5 KB jobs fits). At least max_payload_bytes.",
    )
    max_request_bytes_in_flight: PositiveInt = Field(
        default=64 * 1_048_576,
        description="Request body bytes being received or handled at once by this process, "
        "bytes; a request that would pass it gets 503 with Retry-After. At least "
        "max_request_bytes.",
    )
    body_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="A request's whole body must arrive within this from the end of its headers, "
        "s; else 408 and the connection is closed (its bytes leave the in-flight budget at once).",
    )
    limit_concurrency: int = Field(
        default=1000,
        ge=1,
        le=1_000_000,
        description="Open HTTP connections or requests in progress at once; past it a request "
        "gets 503 (an idle connection is closed first to make room).",
    )
    keep_alive_timeout_seconds: int = Field(
        default=5, ge=1, le=3600, description="An idle keep-alive connection is closed after, s."
    )
    headers_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="A request's line and headers must arrive within this, from the first byte "
        "(or from the connection), s; else the connection is closed.",
    )
    max_header_bytes: int = Field(
        default=32_768,
        ge=1024,
        le=1_048_576,
        description="Request line and headers together, bytes; more gets 431.",
    )
    max_headers: int = Field(
        default=100, ge=10, le=10_000, description="Header fields per request; more gets 431."
    )
    forwarded_allow_ips: str = Field(
        default="127.0.0.1,::1",
        validation_alias=AliasChoices("FORWARDED_ALLOW_IPS", "JOBQUEUE_FORWARDED_ALLOW_IPS"),
        description="uvicorn's FORWARDED_ALLOW_IPS: proxies (addresses, networks, or *) whose "
        "X-Forwarded-For, X-Forwarded-Proto and X-Forwarded-Host are believed.",
    )
    root_path: str = Field(
        default="",
        max_length=200,
        pattern=r"^(/[A-Za-z0-9._~-]+)*$",
        description="The path prefix a reverse proxy serves the service under, e.g. /jobqueue "
        "(the proxy strips it; links in the dashboard and the API docs get it back).",
    )
    max_attempts: int = Field(default=3, ge=1, le=1000, description="Default attempts per job.")
    backoff_base_seconds: float = Field(
        default=1.0, ge=0, le=TEN_YEARS_SECONDS, description="Retry backoff base, s."
    )
    backoff_max_seconds: float = Field(
        default=3600.0,
        ge=0,
        le=TEN_YEARS_SECONDS,
        description="Retry backoff cap, s (at most ten years, like delay_seconds).",
    )
    default_timeout_seconds: PositiveFloat = Field(default=300.0, description="Per attempt, s.")
    rescue_interval_seconds: PositiveFloat = Field(default=5.0, description="Rescuer period, s.")
    retention_done_seconds: float = Field(
        ge=0,
        le=TEN_YEARS_SECONDS,
        default=7 * 86400.0,
        description="Delete done jobs this long after they finished, s (0: keep them; "
        "default 7 days). Their attempt history goes with them, and so does their "
        "idempotency key (docs/deploy.md, Retention).",
    )
    retention_cancelled_seconds: float = Field(
        ge=0,
        le=TEN_YEARS_SECONDS,
        default=7 * 86400.0,
        description="Delete cancelled jobs this long after they finished, s (0: keep them; "
        "default 7 days).",
    )
    retention_failed_seconds: float = Field(
        ge=0,
        le=TEN_YEARS_SECONDS,
        default=30 * 86400.0,
        description="Delete failed jobs this long after they finished, s (0: keep them; "
        "default 30 days).",
    )
    vacuum_dead_rows: int = Field(
        ge=0,
        le=1_000_000_000,
        default=50_000,
        description="VACUUM the jobs table when this many dead rows have piled up (or a tenth "
        "of its live rows, if more), checked every JOBQUEUE_VACUUM_INTERVAL_SECONDS: it keeps "
        "claims fast over a big backlog. 0: leave it to autovacuum.",
    )
    vacuum_interval_seconds: float = Field(
        ge=0.5,
        le=3600,
        default=5.0,
        description="How often the dead-row count is read, s (0.5 to 3600: a read costs a "
        "transaction).",
    )
    retention_interval_seconds: float = Field(
        gt=0,
        le=86_400,
        default=60.0,
        description="Pruner period, s: how often due finished jobs are deleted.",
    )
    unhealthy_after_seconds: PositiveFloat = Field(
        default=60.0,
        description="/healthz fails once a background loop has kept failing this long, s "
        "(an orchestrator then restarts the process).",
    )
    schedules: str = Field(
        default="",
        max_length=1_000_000,
        description="Periodic jobs of the deployment: a JSON list of schedules, each "
        '{"name", "cron", "task", "payload", "queue", "priority", "timezone"} as POST '
        "/schedules takes them; written at each start of a worker process (docs/schedules.md).",
    )
    schedules_file: str = Field(
        default="",
        max_length=4096,
        description="A file holding the same JSON list as JOBQUEUE_SCHEDULES (both may be set).",
    )
    role: Literal["serve", "worker", "api"] = Field(
        default="serve",
        description="What this process runs: serve (the API and workers), worker (workers and "
        "maintenance; only /healthz, /readyz and /metrics over HTTP) or api (the API only). "
        "The commands jobqueue serve, jobqueue worker and jobqueue api set it.",
    )
    workers_enabled: bool = Field(
        default=True, description="False: API only, no worker pool (as JOBQUEUE_ROLE=api)."
    )
    db_pool_size: PositiveInt = Field(default=10, description="SQLAlchemy pool size.")
    db_pool_timeout_seconds: PositiveFloat = Field(default=10.0, description="Pool wait, s.")
    db_statement_cache: bool = Field(
        default=True,
        description="Cache prepared statements per connection. False behind pgbouncer in "
        "transaction mode (docs/deploy.md); ?statement_cache_size=0 in the URL does the same.",
    )
    listen: bool = Field(
        default=True,
        description="Open a LISTEN connection so that NOTIFY wakes workers and long-polls at "
        "once. False (poll-only, e.g. behind pgbouncer in transaction mode, which cannot LISTEN): "
        "workers and ?wait_seconds= readers poll every poll_interval_seconds.",
    )
    http_signing_secret: SecretStr | None = Field(
        default=None, description="Standard Webhooks secret for the http task (whsec_…)."
    )
    http_allowed_hosts: str = Field(
        default="*", description="Host patterns the http task may call."
    )
    http_allow_private: bool = Field(
        default=False, description="Let the http task call private/loopback/link-local addresses."
    )
    http_max_response_bytes: PositiveInt = Field(
        default=65_536, description="Response body kept in an http job's result, bytes."
    )
    log_format: Literal["auto", "json", "console"] = "auto"
    log_payloads: bool = Field(
        default=False, description="Debugging: include job payloads in job log events."
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    api_keys: SecretStr | None = Field(
        default=None,
        description='JSON list of {"name", "role", "key"}; role read, write or admin. '
        "Unset: no key needed, and the service binds to loopback only.",
    )
    insecure: bool = Field(
        default=False, description="Allow binding a non-loopback address without API keys."
    )
    metrics_require_key: bool = Field(
        default=False, description="Make /metrics need a key with the read role."
    )
    metrics_max_label_values: int = Field(
        default=100,
        ge=1,
        le=10_000,
        description="Distinct values a queue or task label takes per metric; later values are "
        'counted under "other" (the configured queues and the registered tasks come first).',
    )
    max_long_polls: int = Field(
        default=1000,
        ge=1,
        le=1_000_000,
        description="Requests of this process that may wait on GET /jobs/{id}?wait_seconds= at "
        "once; one more gets a 429 with Retry-After.",
    )
    lease_max_wait_seconds: float = Field(
        default=20.0,
        ge=0,
        le=20,
        description="The longest wait of a POST /leases long-poll, s (a request asking for more "
        "waits this long); lower it below an idle timeout of a proxy in front of the service.",
    )
    max_lease_polls_per_key: int = Field(
        default=1000,
        ge=1,
        le=1_000_000,
        description="POST /leases requests of one API key that may wait (long-poll) at once in "
        "this process; one more gets a 429 with Retry-After. All keys together: "
        "JOBQUEUE_MAX_LONG_POLLS.",
    )
    session_secret: SecretStr | None = Field(
        default=None,
        description="Signs dashboard sessions (32+ characters); the same on every replica. "
        "Unset: a random secret per process.",
    )
    session_max_age_seconds: int = Field(
        default=43_200, ge=60, le=2_592_000, description="Dashboard session lifetime, s."
    )

    @property
    def runs_workers(self) -> bool:
        """True when this process runs a worker pool (role ``serve`` or ``worker``, and
        ``workers_enabled``)."""
        return self.role != "api" and self.workers_enabled

    @property
    def serves_api(self) -> bool:
        """True when this process serves the jobs API and the dashboard (not role ``worker``)."""
        return self.role != "worker"

    @model_validator(mode="after")
    def _check_role(self) -> Settings:
        if self.role == "worker" and not self.workers_enabled:
            raise ValueError(
                "JOBQUEUE_ROLE=worker runs workers, but JOBQUEUE_WORKERS_ENABLED=false turns "
                "them off: drop one of the two"
            )
        return self

    @field_validator("lease_seconds")
    @classmethod
    def _check_lease(cls, value: float) -> float:
        if value < MIN_LEASE_SECONDS:
            raise ValueError(
                f"JOBQUEUE_LEASE_SECONDS must be at least {MIN_LEASE_SECONDS:g} s, got {value:g}: "
                "the heartbeat renews a lease every third of it, and a shorter lease is lost to "
                "ordinary database delays (every job would run again); set "
                f"JOBQUEUE_LEASE_SECONDS={MIN_LEASE_SECONDS:g} or more (default 30)"
            )
        return value

    @field_validator("concurrency")
    @classmethod
    def _check_concurrency(cls, value: int) -> int:
        if value > MAX_CONCURRENCY:
            raise ValueError(
                f"JOBQUEUE_CONCURRENCY must be 1 to {MAX_CONCURRENCY}, got {value}: set "
                f"JOBQUEUE_CONCURRENCY={MAX_CONCURRENCY} or less, and run more processes for "
                "more jobs at once"
            )
        return value

    @field_validator("max_payload_depth")
    @classmethod
    def _check_payload_depth(cls, value: int) -> int:
        if value > MAX_PAYLOAD_DEPTH:
            raise ValueError(
                f"JOBQUEUE_MAX_PAYLOAD_DEPTH must be 1 to {MAX_PAYLOAD_DEPTH}, got {value}: "
                "JSON nested deeper than about 255 levels cannot be serialised, so such a job "
                f"could be stored but never read back; set JOBQUEUE_MAX_PAYLOAD_DEPTH="
                f"{MAX_PAYLOAD_DEPTH} or less (default 64)"
            )
        return value

    @model_validator(mode="after")
    def _check_request_fits_payload(self) -> Settings:
        if self.max_request_bytes < self.max_payload_bytes:
            raise ValueError(
                f"JOBQUEUE_MAX_REQUEST_BYTES ({self.max_request_bytes}) is smaller than "
                f"JOBQUEUE_MAX_PAYLOAD_BYTES ({self.max_payload_bytes}): a payload of the allowed "
                "size could never arrive; set JOBQUEUE_MAX_REQUEST_BYTES to at least "
                f"{self.max_payload_bytes}, or lower JOBQUEUE_MAX_PAYLOAD_BYTES"
            )
        return self

    @model_validator(mode="after")
    def _check_queue_lists_disjoint(self) -> Settings:
        served = parse_queues(self.queues, default_concurrency=1)
        both = [name for name in parse_names(self.remote_queues) if name in served]
        if both:
            listed = ", ".join(repr(name) for name in both)
            what = f"queue {listed} is" if len(both) == 1 else f"queues {listed} are"
            raise ValueError(
                f"{what} in both JOBQUEUE_QUEUES and JOBQUEUE_REMOTE_QUEUES: list a "
                "queue this process runs in JOBQUEUE_QUEUES only, and one that only other "
                "processes run in JOBQUEUE_REMOTE_QUEUES only"
            )
        return self

    @model_validator(mode="after")
    def _check_body_budget(self) -> Settings:
        if self.max_request_bytes_in_flight < self.max_request_bytes:
            raise ValueError(
                "JOBQUEUE_MAX_REQUEST_BYTES_IN_FLIGHT must be at least JOBQUEUE_MAX_REQUEST_BYTES "
                f"({self.max_request_bytes}), or no request of the largest size could be received"
            )
        return self

    @field_validator("queues")
    @classmethod
    def _check_queues(cls, value: str) -> str:
        parse_queues(value, default_concurrency=1)
        return value

    @field_validator("remote_queues")
    @classmethod
    def _check_remote_queues(cls, value: str) -> str:
        for name in parse_names(value):
            if not _QUEUE_NAME.match(name):
                raise ValueError(
                    f"queue name {name!r} is not valid: use 1-100 letters, digits, '_.:-'"
                )
        return value

    @field_validator("remote_tasks")
    @classmethod
    def _check_remote_tasks(cls, value: str) -> str:
        for name in parse_names(value):
            if not _TASK_NAME.match(name):
                raise ValueError(
                    f"task name {name!r} is not valid: use 1-200 letters, digits, '_.:-'"
                )
        return value

    @field_validator("api_keys")
    @classmethod
    def _check_api_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        parse_api_keys(value.get_secret_value())
        return value

    @field_validator("session_secret")
    @classmethod
    def _check_session_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        if len(value.get_secret_value()) < MIN_SESSION_SECRET_LENGTH:
            raise ValueError(
                f"JOBQUEUE_SESSION_SECRET must be at least {MIN_SESSION_SECRET_LENGTH} "
                "characters (make one with: python3 -c 'import secrets; "
                "print(secrets.token_urlsafe(32))')"
            )
        return value

    @property
    def api_key_list(self) -> tuple[ApiKey, ...]:
        """The parsed ``JOBQUEUE_API_KEYS``; empty when none are configured."""
        if self.api_keys is None:
            return ()
        return parse_api_keys(self.api_keys.get_secret_value())

    @property
    def database_url_value(self) -> str | None:
        """The database URL in clear (it may hold a password: never log it)."""
        return None if self.database_url is None else self.database_url.get_secret_value()

    @property
    def forwarded_allow_list(self) -> list[str]:
        """``FORWARDED_ALLOW_IPS`` split: e.g. ``["127.0.0.1", "::1"]``, or ``["*"]``."""
        return parse_names(self.forwarded_allow_ips)

    @property
    def queue_concurrency(self) -> dict[str, int]:
        """Slots per served queue, e.g. ``{"default": 10, "emails": 2}``."""
        return parse_queues(self.queues, self.concurrency)

    @property
    def queue_names(self) -> list[str]:
        """The queues this process serves, e.g. ``["default"]``."""
        return list(self.queue_concurrency)

    @property
    def known_queue_names(self) -> frozenset[str]:
        """The queues a job may name: those this process serves and ``remote_queues``."""
        return frozenset(self.queue_names) | frozenset(parse_names(self.remote_queues))

    @property
    def task_module_names(self) -> list[str]:
        """The modules to import at start so that their ``@task`` functions register."""
        return parse_names(self.task_modules)


OTHER_VARIABLES: dict[str, str] = {
    "JOBQUEUE_URL": "the CLI's --url",
    "JOBQUEUE_CLIENT_KEY": "the CLI's --key",
    "JOBQUEUE_TEST_ADMIN_URL": "the test suite's PostgreSQL server (tests/conftest.py)",
}
"""``JOBQUEUE_*`` variables the project reads outside :class:`Settings`, and who reads them."""


def variable_name(field: str) -> str:
    """The environment variable of a :class:`Settings` field, e.g. ``JOBQUEUE_CONCURRENCY``
    for ``concurrency`` (``FORWARDED_ALLOW_IPS``, uvicorn's name, for ``forwarded_allow_ips``);
    ``field`` upper-cased when it is not a field."""
    info = Settings.model_fields.get(field)
    if info is None:
        return field.upper()
    alias = info.validation_alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return f"{ENV_PREFIX}{field.upper()}"


def known_variables() -> frozenset[str]:
    """Every ``JOBQUEUE_*`` variable jobqueue reads: the settings' (with the aliases) and
    :data:`OTHER_VARIABLES`; upper case."""
    names = {f"{ENV_PREFIX}{field.upper()}" for field in Settings.model_fields}
    for info in Settings.model_fields.values():
        if isinstance(info.validation_alias, AliasChoices):
            names.update(str(choice).upper() for choice in info.validation_alias.choices)
    names.update(OTHER_VARIABLES)
    return frozenset(name for name in names if name.startswith(ENV_PREFIX))


def unknown_variables(names: Iterable[str]) -> list[tuple[str, str | None]]:
    """The ``JOBQUEUE_*`` names among ``names`` that jobqueue does not read (typos, say), each
    with the known variable it most likely means.

    Names are compared in upper case, as the settings are read (``jobqueue_port`` sets
    ``JOBQUEUE_PORT``). Unknown variables are never refused (a newer release may read them);
    the caller logs them.

    Args:
        names: environment variable names, e.g. ``os.environ`` and the keys of ``.env``.

    Returns:
        ``[(name, likely_meant_or_None)]`` sorted by name, each name once (upper case), e.g.
        ``[("JOBQUEUE_CONCURENCY", "JOBQUEUE_CONCURRENCY")]``; the guess is
        :func:`difflib.get_close_matches` of the part after the prefix.
    """
    known = known_variables()
    suffixes = sorted(name.removeprefix(ENV_PREFIX) for name in known)
    unknown: dict[str, str | None] = {}
    for raw in names:
        name = raw.upper()
        if not name.startswith(ENV_PREFIX) or name in known:
            continue
        matches = difflib.get_close_matches(name.removeprefix(ENV_PREFIX), suffixes, n=1)
        unknown[name] = f"{ENV_PREFIX}{matches[0]}" if matches else None
    return sorted(unknown.items())


def configured_variable_names(environ: Mapping[str, str]) -> list[str]:
    """The variable names a :class:`Settings` built with the defaults could read: those of
    ``environ`` and the keys of the ``.env`` file in the working directory (when there is one),
    upper case.

    Raises:
        OSError or UnicodeDecodeError: ``.env`` exists but cannot be read (building the
            :class:`Settings` fails the same way first).
    """
    from_file = DotEnvSettingsSource(Settings).env_vars
    return sorted({name.upper() for name in (*environ, *from_file)})


def settings_errors(error: ValidationError) -> list[str]:
    """One line per problem of a failed :class:`Settings`, each naming its variable, e.g.
    ``JOBQUEUE_PORT: Input should be less than or equal to 65535``. Never the value given (it
    may be a secret): only what the validators themselves put in their messages."""
    lines: list[str] = []
    for item in error.errors(include_url=False, include_input=False, include_context=False):
        message = item["msg"].removeprefix("Value error, ")
        if item["loc"]:
            name = variable_name(str(item["loc"][0]))
            if not message.startswith(name):
                message = f"{name}: {message}"
        lines.append(message)
    return lines
