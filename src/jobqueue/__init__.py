"""jobqueue: a PostgreSQL-backed job queue service.

Clients enqueue jobs over HTTP; asyncio workers inside the same processes claim them with
``FOR UPDATE SKIP LOCKED``, run the named task and record the outcome. PostgreSQL holds the truth,
so any number of identical processes may share one database. See ``docs/architecture.md``.

What a task author needs is here::

    from jobqueue import JobContext, RetryLater, task

    @task("resize")
    async def resize(ctx: JobContext) -> dict[str, int]:
        if ctx.attempt == 1:
            raise RetryLater(5, "the image is not uploaded yet")
        return {"width": ctx.payload["width"] // 2}
"""

from jobqueue.errors import Discard, RetryLater, TaskError
from jobqueue.jobs import JobStatus
from jobqueue.tasks.registry import JobContext, TaskRegistry, task

__version__ = "0.1.0"
__all__ = [
    "Discard",
    "JobContext",
    "JobStatus",
    "RetryLater",
    "TaskError",
    "TaskRegistry",
    "__version__",
    "task",
]
