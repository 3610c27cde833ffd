"""Create the jobs table.

Revision ID: 0001
Revises:
Create Date: 2026-11-29

Storage choices (each one is about keeping the hot claim/finish UPDATEs cheap):
- Few, partial indexes. A claim or a finish changes ``status``, so its new row version gets an
  entry in every index whose predicate it meets (PostgreSQL manual, "Heap-Only Tuples (HOT)"):
  the primary key always, ``ix_jobs_in_progress`` on a claim, and nothing else. The status
  index covers only failed and cancelled jobs (what operators list); done and todo jobs are
  found through the primary key and the claim index.
- fillfactor 70: leaves room on each heap page so that an UPDATE can write the new row version
  on the same page. Lease extensions (heartbeats) change only lease_expires_at, which no index
  covers (the rescuer walks ``ix_jobs_in_progress``, a few rows), so they are HOT updates.
- autovacuum_vacuum_scale_factor 0.01 and a cost delay of 1 ms: a queue table turns its rows
  over all the time; vacuum must run after 1 % dead rows instead of the default 20 %, and must
  not be throttled, or the claim index bloats with dead entries and claims slow down.
- The claim index is partial (status = 'todo') and ordered like the claim query
  (queue, priority DESC, run_at, id), so a claim reads a few index entries whatever the size of
  the done history.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.BigInteger, sa.Identity(always=False), primary_key=True),
        sa.Column("queue", sa.Text, nullable=False, server_default="default"),
        sa.Column("task", sa.Text, nullable=False),
        sa.Column("payload", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("description", sa.Text),
        sa.Column("status", sa.Text, nullable=False, server_default="todo"),
        sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("max_attempts", sa.Integer, nullable=False, server_default="3"),
        sa.Column("rescues", sa.Integer, nullable=False, server_default="0"),
        sa.Column(
            "run_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True)),
        sa.Column("worker_id", sa.Text),
        sa.Column("result", JSONB),
        sa.Column("error", sa.Text),
        sa.Column("idempotency_key", sa.Text),
        sa.Column("timeout_seconds", sa.Double, nullable=False, server_default="300"),
        sa.CheckConstraint(
            "status IN ('todo', 'in_progress', 'done', 'failed', 'cancelled')",
            name="ck_jobs_status",
        ),
        sa.CheckConstraint("attempts >= 0", name="ck_jobs_attempts"),
        sa.CheckConstraint("max_attempts >= 1", name="ck_jobs_max_attempts"),
        sa.CheckConstraint("timeout_seconds > 0", name="ck_jobs_timeout_seconds"),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
    )
    op.execute(
        "ALTER TABLE jobs SET (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.01,"
        " autovacuum_vacuum_cost_delay = 1)"
    )
    op.create_index(
        "ix_jobs_claim",
        "jobs",
        ["queue", sa.text("priority DESC"), "run_at", "id"],
        postgresql_where=sa.text("status = 'todo'"),
    )
    op.create_index(
        "ix_jobs_in_progress",
        "jobs",
        ["id"],
        postgresql_where=sa.text("status = 'in_progress'"),
    )
    op.create_index(
        "uq_jobs_idempotency_key",
        "jobs",
        ["idempotency_key"],
        unique=True,
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
    )
    op.create_index(
        "ix_jobs_status_id",
        "jobs",
        ["status", "id"],
        postgresql_where=sa.text("status IN ('failed', 'cancelled')"),
    )


def downgrade() -> None:
    op.drop_table("jobs")
