"""Process registry; CHECK constraints renamed to the naming convention.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

- ``processes``: one row per live jobqueue process with a worker pool, with the queues it serves
  and the tasks it can run, renewed every few seconds (``seen_at``). The service reads it to
  count the ``todo`` jobs that no live process can run (a rolling deploy that added a task to
  some processes only): those jobs wait, they are never claimed by a process that lacks the task.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


_CHECKS = {
    "jobs": ("status", "attempts", "max_attempts", "timeout_seconds"),
    "job_attempts": ("outcome",),
}


def upgrade() -> None:
    for table, names in _CHECKS.items():
        for name in names:
            op.execute(
                f"ALTER TABLE {table} RENAME CONSTRAINT ck_{table}_ck_{table}_{name}"
                f" TO ck_{table}_{name}"
            )
    op.create_table(
        "processes",
        sa.Column("worker_id", sa.Text, nullable=False),
        sa.Column("host", sa.Text, nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("version", sa.Text, nullable=False),
        sa.Column("queues", ARRAY(sa.Text), nullable=False),
        sa.Column("tasks", ARRAY(sa.Text), nullable=False),
        sa.Column(
            "started_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
        sa.Column(
            "seen_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")
        ),
        sa.PrimaryKeyConstraint("worker_id", name="pk_processes"),
    )


def downgrade() -> None:
    op.drop_table("processes")
    for table, names in _CHECKS.items():
        for name in names:
            op.execute(
                f"ALTER TABLE {table} RENAME CONSTRAINT ck_{table}_{name}"
                f" TO ck_{table}_ck_{table}_{name}"
            )
