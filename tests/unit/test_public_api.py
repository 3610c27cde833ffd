"""What ``import jobqueue`` offers a task author (httpx's exported-members test)."""

from __future__ import annotations

import jobqueue


def test_package_exports_what_a_task_author_needs() -> None:
    assert sorted(jobqueue.__all__) == [
        "Discard",
        "JobContext",
        "JobStatus",
        "RetryLater",
        "TaskError",
        "TaskRegistry",
        "__version__",
        "task",
    ]
    for name in jobqueue.__all__:
        assert getattr(jobqueue, name) is not None
    assert jobqueue.Discard.__module__ == "jobqueue.errors"
    assert jobqueue.JobContext.__module__ == "jobqueue.tasks.registry"
