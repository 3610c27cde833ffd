"""jobqueue: a PostgreSQL-backed job queue service.

Clients enqueue jobs over HTTP; asyncio workers inside the same processes claim them with
``FOR UPDATE SKIP LOCKED``, run the named task and record the outcome. PostgreSQL holds the truth,
so any number of identical processes may share one database. See ``DESIGN.md`` for the picture.
"""

from jobqueue.jobs import JobStatus
from jobqueue.tasks.registry import TaskRegistry, task

__version__ = "0.1.0"
__all__ = ["JobStatus", "TaskRegistry", "__version__", "task"]
