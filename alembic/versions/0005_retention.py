"""Retention: a NOTIFY when active jobs are deleted.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07

- ``jobs_deleted``: a statement-level trigger that, when a DELETE removes ``todo`` or
  ``in_progress`` jobs (by hand: the pruner deletes finished jobs only), sends the "finished"
  message of the NOTIFY protocol (``f:<ids>``, or ``f:*`` when the ids do not fit in one
  payload; ``notify/protocol.py``) so that long-polls waiting on them read them again and answer
  404 at once instead of at their deadline. A DELETE of finished jobs sends nothing.

The pruner needs no index (``db/retention.py`` says why: an index over finished rows would cost
every finish an index insert).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION jobqueue_notify_deleted() RETURNS trigger
        LANGUAGE plpgsql AS $$
        DECLARE
            ids text;
        BEGIN
            SELECT string_agg(id::text, ',') INTO ids
            FROM deleted_jobs WHERE status IN ('todo', 'in_progress');
            IF ids IS NOT NULL THEN
                PERFORM pg_notify(
                    'jobqueue',
                    'f:' || CASE WHEN octet_length(ids) > 7898 THEN '*' ELSE ids END
                );
            END IF;
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER jobs_deleted AFTER DELETE ON jobs"
        " REFERENCING OLD TABLE AS deleted_jobs"
        " FOR EACH STATEMENT EXECUTE FUNCTION jobqueue_notify_deleted()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS jobs_deleted ON jobs")
    op.execute("DROP FUNCTION IF EXISTS jobqueue_notify_deleted()")
