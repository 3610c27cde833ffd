"""Attempt history and cancellation requests.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29

- ``jobs.cancel_requested_at``: set by ``POST /jobs/{id}/cancel`` on an ``in_progress`` job; the
  process running it cancels the attempt and the outcome write makes it ``cancelled``. A retry or
  a rescue of such a job ends ``cancelled`` too.
- ``job_attempts``: one row per attempt that did not finish the job successfully (retried,
  failed, cancelled, rescued), with the error split into type, message and trimmed traceback.
  A successful attempt is fully described by the job row itself (worker_id, started_at,
  finished_at), so the hot path writes no extra row for it; ``GET /jobs/{id}/attempts`` joins
  both. Attempt numbers restart after a manual retry, hence the surrogate key.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("cancel_requested_at", sa.DateTime(timezone=True)))
    op.create_table(
        "job_attempts",
        sa.Column("id", sa.BigInteger, sa.Identity(always=False), primary_key=True),
        sa.Column(
            "job_id",
            sa.BigInteger,
            sa.ForeignKey("jobs.id", ondelete="CASCADE", name="fk_job_attempts_job_id_jobs"),
            nullable=False,
        ),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("worker_id", sa.Text),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column(
            "finished_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("error_type", sa.Text),
        sa.Column("error_message", sa.Text),
        sa.Column("traceback", sa.Text),
        sa.CheckConstraint(
            "outcome IN ('retried', 'failed', 'cancelled', 'rescued')",
            name="ck_job_attempts_outcome",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_job_attempts"),
    )
    op.create_index("ix_job_attempts_job_id", "job_attempts", ["job_id", "id"])


def downgrade() -> None:
    op.drop_table("job_attempts")
    op.drop_column("jobs", "cancel_requested_at")
