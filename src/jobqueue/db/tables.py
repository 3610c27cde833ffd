"""The schema: SQLAlchemy 2 tables that every query is built from and alembic migrates to.

This module is the one source. The migrations in ``alembic/versions`` must produce exactly these
tables, indexes and constraints: ``tests/db/test_schema.py`` compares a migrated database with
this metadata (alembic's ``compare_metadata``) and the CHECK constraints with the enums. Storage
parameters that SQLAlchemy does not model (fillfactor, autovacuum) live in the migrations only.

Status and outcome values come from :class:`JobStatus` and :data:`RECORDED_OUTCOMES`, never
from literals typed again.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Double,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from jobqueue.jobs import RECORDED_OUTCOMES, JobStatus

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)


def sql_in(values: Iterable[str]) -> str:
    """``'a', 'b'``: string values as a SQL list for ``IN (…)`` (values from our enums only)."""
    return ", ".join(f"'{value}'" for value in values)


def status_is(*statuses: JobStatus) -> str:
    """SQL text ``status = 'todo'`` or ``status IN ('failed', 'cancelled')`` from the enum."""
    if len(statuses) == 1:
        return f"status = '{statuses[0].value}'"
    return f"status IN ({sql_in(s.value for s in statuses)})"


jobs = Table(
    "jobs",
    metadata,
    Column("id", BigInteger, Identity(always=False), primary_key=True),
    Column("queue", Text, nullable=False, server_default="default"),
    Column("task", Text, nullable=False),
    Column("payload", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("description", Text),
    Column("status", Text, nullable=False, server_default="todo"),
    Column("priority", Integer, nullable=False, server_default="0"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("max_attempts", Integer, nullable=False, server_default="3"),
    Column("rescues", Integer, nullable=False, server_default="0"),
    Column("run_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("started_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
    Column("lease_expires_at", DateTime(timezone=True)),
    Column("worker_id", Text),
    Column("result", JSONB),
    Column("error", Text),
    Column("idempotency_key", Text),
    Column("timeout_seconds", Double, nullable=False, server_default="300"),
    Column("cancel_requested_at", DateTime(timezone=True)),
    # Sizes in bytes of the JSON text of ``payload`` and ``result`` (0 when there is no result),
    # written with them, so that a page of jobs is cut to a byte budget before any payload is
    # read (``queries.list_jobs``). ``pg_column_size`` would not do: it is the compressed size.
    Column("payload_bytes", Integer, nullable=False, server_default="0"),
    Column("result_bytes", Integer, nullable=False, server_default="0"),
    CheckConstraint(f"status IN ({sql_in(s.value for s in JobStatus)})", name="status"),
    CheckConstraint("attempts >= 0", name="attempts"),
    CheckConstraint("max_attempts >= 1", name="max_attempts"),
    CheckConstraint("timeout_seconds > 0", name="timeout_seconds"),
    Index(
        "ix_jobs_claim",
        "queue",
        text("priority DESC"),
        "run_at",
        "id",
        postgresql_where=text(status_is(JobStatus.TODO)),
    ),
    Index("ix_jobs_in_progress", "id", postgresql_where=text(status_is(JobStatus.IN_PROGRESS))),
    Index(
        "uq_jobs_idempotency_key",
        "idempotency_key",
        unique=True,
        postgresql_where=text("idempotency_key IS NOT NULL"),
    ),
    Index(
        "ix_jobs_status_id",
        "status",
        "id",
        postgresql_where=text(status_is(JobStatus.FAILED, JobStatus.CANCELLED)),
    ),
)

job_attempts = Table(
    "job_attempts",
    metadata,
    Column("id", BigInteger, Identity(always=False), primary_key=True),
    Column("job_id", BigInteger, ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("worker_id", Text),
    Column("started_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("outcome", Text, nullable=False),
    Column("error_type", Text),
    Column("error_message", Text),
    Column("traceback", Text),
    CheckConstraint(f"outcome IN ({sql_in(o.value for o in RECORDED_OUTCOMES)})", name="outcome"),
    Index("ix_job_attempts_job_id", "job_id", "id"),
)

processes = Table(
    "processes",
    metadata,
    Column("worker_id", Text, primary_key=True),
    Column("host", Text, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("version", Text, nullable=False),
    Column("queues", ARRAY(Text), nullable=False),
    Column("tasks", ARRAY(Text), nullable=False),
    Column("role", Text, nullable=False, server_default="serve"),
    Column("slots", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("busy", Integer, nullable=False, server_default="0"),
    Column("finished", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("started_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("seen_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
)
"""One row per live jobqueue process (every role): what it serves (queues, and ``slots`` per
queue, ``busy`` of them) and can run (tasks); ``seen_at`` is renewed by its registry loop, and
a row not renewed for a while is deleted by any process. Read to tell which ``todo`` jobs no
live process can run, and how many slots serve each queue."""

queues = Table(
    "queues",
    metadata,
    Column("name", Text, primary_key=True),
    Column("paused_at", DateTime(timezone=True)),
    Column("paused_by", Text),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
)
"""One row per queue an operator paused or resumed; ``paused_at`` is set while it is paused.
A queue without a row is not paused. The claim skips paused queues (``leases/_statements.py``)."""

schedules = Table(
    "schedules",
    metadata,
    Column("name", Text, primary_key=True),
    Column("cron", Text, nullable=False),
    Column("timezone", Text, nullable=False, server_default="UTC"),
    Column("task", Text, nullable=False),
    Column("payload", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("queue", Text, nullable=False, server_default="default"),
    Column("priority", Integer, nullable=False, server_default="0"),
    Column("paused", Boolean, nullable=False, server_default=text("false")),
    Column("source", Text, nullable=False, server_default="api"),
    Column("next_run_at", DateTime(timezone=True), nullable=False),
    Column("last_run_at", DateTime(timezone=True)),
    Column("last_job_id", BigInteger),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    CheckConstraint("source IN ('api', 'settings')", name="source"),
    Index("ix_schedules_due", "next_run_at", postgresql_where=text("NOT paused")),
)
"""Periodic jobs: one row per schedule (``service/_schedules.py``). ``next_run_at`` is the next
slot (UTC); the scheduler enqueues one job per slot, with the idempotency key
``schedule:<name>:<slot>`` so that two processes firing the same slot create one job.
``source`` says whether the API or the settings (``JOBQUEUE_SCHEDULES``) defined it."""
