"""Queues that can be paused, and the slots each process serves per queue.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07

- ``queues``: one row per queue an operator paused or resumed (``POST /queues/{name}/pause``):
  ``paused_at`` is set while it is paused (NULL once resumed), with who paused it. A queue with
  no row is not paused. The claim statement (``leases/_statements.py``) skips a paused queue,
  so every process, in-process pool or HTTP worker alike, stops taking its jobs at its next
  claim; running jobs finish.
- ``processes``: every process announces itself now, API-only ones too, with its ``role``
  (``serve``, ``worker``, ``api``), its runner ``slots`` per queue (``{"queue": slots}``, for
  the slots online of ``GET /queues``) and how many are ``busy`` (``GET /workers``, the
  dashboard's "Processes" page).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "queues",
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("paused_at", sa.DateTime(timezone=True)),
        sa.Column("paused_by", sa.Text),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
        sa.PrimaryKeyConstraint("name", name="pk_queues"),
    )
    op.add_column("processes", sa.Column("role", sa.Text, nullable=False, server_default="serve"))
    op.add_column(
        "processes",
        sa.Column("slots", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    )
    op.add_column("processes", sa.Column("busy", sa.Integer, nullable=False, server_default="0"))
    op.add_column(
        "processes",
        sa.Column("finished", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    )


def downgrade() -> None:
    op.drop_column("processes", "finished")
    op.drop_column("processes", "busy")
    op.drop_column("processes", "slots")
    op.drop_column("processes", "role")
    op.drop_table("queues")
