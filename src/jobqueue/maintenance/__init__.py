"""Process-wide maintenance: the supervisor every background loop runs under, the rescuer of
expired leases, the pruner of old finished jobs, the scheduler of periodic jobs, and the process
registry."""

from jobqueue.maintenance.pruner import Pruner
from jobqueue.maintenance.registry import ProcessRegistry
from jobqueue.maintenance.rescuer import Rescuer
from jobqueue.maintenance.scheduler import Scheduler
from jobqueue.maintenance.supervisor import LoopState, Supervisor

__all__ = ["LoopState", "ProcessRegistry", "Pruner", "Rescuer", "Scheduler", "Supervisor"]
