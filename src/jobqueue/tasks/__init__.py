"""Tasks: the registry (``@task``) and the built-in tasks ``echo``, ``sleep`` and ``fail``."""

from jobqueue.tasks.registry import JobContext, Task, TaskRegistry, default_registry, task

__all__ = ["JobContext", "Task", "TaskRegistry", "default_registry", "task"]
