"""Run the alembic migrations from code (``jobqueue migrate`` and start-up).

The migration scripts travel with the package: an installed wheel carries them under
``jobqueue/_migrations/alembic``; a source checkout (editable install) uses the repository's
top-level ``alembic/``. So ``jobqueue serve`` works from any directory.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory


def script_location() -> Path:
    """The folder that holds ``env.py`` and ``versions/``.

    Raises:
        FileNotFoundError: when neither the packaged nor the source-tree folder exists.
    """
    package_dir = Path(__file__).resolve().parent.parent
    candidates = [
        package_dir / "_migrations" / "alembic",
        package_dir.parent.parent / "alembic",
    ]
    for candidate in candidates:
        if (candidate / "env.py").is_file():
            return candidate
    raise FileNotFoundError(f"no alembic scripts at {', '.join(map(str, candidates))}")


STATEMENT_CACHE_ATTRIBUTE = "jobqueue.statement_cache"
"""The ``Config.attributes`` key env.py reads: False turns off prepared-statement caching for
the migration's connection (pgbouncer in transaction mode, see ``db/engine.py``)."""


def alembic_config(database_url: str, statement_cache: bool = True) -> Config:
    """An alembic ``Config`` for ``database_url`` (a SQLAlchemy asyncpg URL).

    Args:
        database_url: where to migrate; driver options in its query are honoured.
        statement_cache: False for pgbouncer in transaction mode (``JOBQUEUE_DB_STATEMENT_CACHE``).
    """
    config = Config()
    config.set_main_option("script_location", str(script_location()))
    # ConfigParser treats % as interpolation: a password may hold one.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    config.attributes[STATEMENT_CACHE_ATTRIBUTE] = statement_cache
    return config


def upgrade_to_head(database_url: str, statement_cache: bool = True) -> None:
    """Migrate the database to the newest revision; a no-op when it is already there.

    Blocking: it runs its own event loop (alembic's env.py), so call it from a thread
    (``asyncio.to_thread``) inside async code. Concurrent callers serialise on a
    transaction-level advisory lock taken inside the migration's transaction, which also holds
    behind pgbouncer in transaction mode (a session-level lock would not: see ``alembic/env.py``).

    Args:
        database_url: where to migrate.
        statement_cache: as :func:`alembic_config`.

    Raises:
        sqlalchemy.exc.DBAPIError / OSError: when the database cannot be reached.
        ConfigurationError: a driver option in the URL that is not a non-negative number.
    """
    command.upgrade(alembic_config(database_url, statement_cache), "head")


def head_revision() -> str:
    """The newest revision id of the packaged scripts, e.g. ``"0001"``."""
    script = ScriptDirectory.from_config(alembic_config("postgresql+asyncpg://unused/unused"))
    head = script.get_current_head()
    if head is None:
        raise FileNotFoundError("the alembic scripts have no head revision")
    return head
