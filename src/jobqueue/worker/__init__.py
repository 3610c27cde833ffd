"""The worker pool: dispatcher, runners, completer, heartbeat, rescuer and listener."""

from jobqueue.worker.pool import PoolConfig, WorkerPool

__all__ = ["PoolConfig", "WorkerPool"]
