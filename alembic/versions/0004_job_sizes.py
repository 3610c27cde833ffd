"""Sizes of a job's payload and result, so that a page of jobs can be cut to a byte budget.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05

- ``jobs.payload_bytes``, ``jobs.result_bytes``: the bytes of the JSON text of ``payload`` and
  of ``result`` (0 when there is none), written with them by the enqueue INSERT and the outcome
  write. ``GET /jobs`` picks the jobs of a page by a running sum of these before it reads any
  payload (``db/queries.py: list_jobs``), so a page holds at most ``JOBQUEUE_MAX_PAGE_BYTES``
  of payloads and results. ``pg_column_size`` is no substitute: it is the compressed size.
- Backfill: one UPDATE of every row, from ``jsonb::text`` (PostgreSQL's text form, with a space
  after each ``,`` and ``:``, so at least the compact size: never an underestimate). It reads
  every payload and writes a new version of every row once: on a large table run the upgrade
  (``jobqueue migrate``) at a quiet time; the new columns are in no index, so the new versions
  can be HOT updates.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A constant default: PostgreSQL 11+ adds the columns without rewriting the table.
    op.add_column(
        "jobs", sa.Column("payload_bytes", sa.Integer, nullable=False, server_default="0")
    )
    op.add_column("jobs", sa.Column("result_bytes", sa.Integer, nullable=False, server_default="0"))
    op.execute(
        "UPDATE jobs SET payload_bytes = octet_length(payload::text),"
        " result_bytes = coalesce(octet_length(result::text), 0)"
    )


def downgrade() -> None:
    op.drop_column("jobs", "result_bytes")
    op.drop_column("jobs", "payload_bytes")
