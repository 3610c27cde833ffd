"""Tasks: the registry (``@task``), the built-ins ``echo``, ``sleep``, ``fail`` and ``http``
(configured from settings in ``create_app``, see ``tasks/http/``)."""

from jobqueue.tasks.registry import JobContext, Task, TaskRegistry, default_registry, task

__all__ = ["JobContext", "Task", "TaskRegistry", "default_registry", "task"]
