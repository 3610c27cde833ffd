"""Process-wide maintenance: the supervisor every background loop runs under, the rescuer of
expired leases, the pruner of old finished jobs, the scheduler of periodic jobs, and the process
registry, and the vacuum of the jobs table's dead rows."""

from jobqueue.maintenance.pruner import Pruner
from jobqueue.maintenance.registry import ProcessRegistry
from jobqueue.maintenance.rescuer import Rescuer
from jobqueue.maintenance.scheduler import Scheduler
from jobqueue.maintenance.supervisor import LoopState, Supervisor
from jobqueue.maintenance.vacuum import Vacuum

__all__ = [
    "LoopState",
    "ProcessRegistry",
    "Pruner",
    "Rescuer",
    "Scheduler",
    "Supervisor",
    "Vacuum",
]
