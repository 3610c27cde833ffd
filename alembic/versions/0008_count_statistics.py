"""Statistics for cheap counts of finished jobs.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07

- ``jobs_queue_status``: extended statistics (most common values) over ``(queue, status)``:
  with millions of finished rows, the counts of ``done``, ``failed`` and ``cancelled`` jobs per
  queue come from ``pg_stats_ext`` (frequency of each pair times the table's row estimate) instead
  of a scan (``db/counts.py``). 1,000 pairs are kept (the statistics target).
- ``autovacuum_analyze_scale_factor = 0.02`` on ``jobs``: ANALYZE after 2 % of the rows changed
  (PostgreSQL's default is 10 %), so the estimates follow a table that turns over quickly.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("CREATE STATISTICS IF NOT EXISTS jobs_queue_status (mcv) ON queue, status FROM jobs")
    op.execute("ALTER STATISTICS jobs_queue_status SET STATISTICS 1000")
    op.execute("ALTER TABLE jobs SET (autovacuum_analyze_scale_factor = 0.02)")


def downgrade() -> None:
    op.execute("ALTER TABLE jobs RESET (autovacuum_analyze_scale_factor)")
    op.execute("DROP STATISTICS IF EXISTS jobs_queue_status")
