"""The in-process worker pool: one claim coordinator, runners, heartbeat, sync-task threads.

The in-process client of ``leases/``; its loops run under the process's supervisor
(``maintenance/supervisor.py``).
"""

from jobqueue.worker.pool import PoolConfig, WorkerPool, new_worker_id

__all__ = ["PoolConfig", "WorkerPool", "new_worker_id"]
