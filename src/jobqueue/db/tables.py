"""SQLAlchemy 2 table definitions: the schema alembic migrates to, and what Core queries use.

The migration in ``alembic/versions`` is the source of truth for DDL details (fillfactor,
partial indexes); this module mirrors it so that Core statements and autogenerate agree.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
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
from sqlalchemy.dialects.postgresql import JSONB

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

STATUS_VALUES = ("todo", "in_progress", "done", "failed", "cancelled")

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
    CheckConstraint(
        "status IN ('todo', 'in_progress', 'done', 'failed', 'cancelled')", name="status"
    ),
    CheckConstraint("attempts >= 0", name="attempts"),
    CheckConstraint("max_attempts >= 1", name="max_attempts"),
    CheckConstraint("timeout_seconds > 0", name="timeout_seconds"),
    Index(
        "ix_jobs_claim",
        "queue",
        text("priority DESC"),
        "run_at",
        "id",
        postgresql_where=text("status = 'todo'"),
    ),
    Index("ix_jobs_in_progress", "id", postgresql_where=text("status = 'in_progress'")),
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
        postgresql_where=text("status IN ('failed', 'cancelled')"),
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
    CheckConstraint("outcome IN ('retried', 'failed', 'cancelled', 'rescued')", name="outcome"),
    Index("ix_job_attempts_job_id", "job_id", "id"),
)
