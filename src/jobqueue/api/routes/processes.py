"""``GET /workers``: the live jobqueue processes on this database, from the process registry
(``maintenance/registry.py``): every role, with the queues and slots each serves and how many
are busy. Needs the ``read`` role."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from jobqueue.access import Role
from jobqueue.api.auth import ACCESS_RESPONSES, needs
from jobqueue.api.deps import Service
from jobqueue.api.guard import GuardedRoute
from jobqueue.db.registry import LiveProcess

router = APIRouter(
    prefix="/workers", tags=["workers"], responses=ACCESS_RESPONSES, route_class=GuardedRoute
)


class ProcessOut(BaseModel):
    """A live process: who (id, host, pid, role, version), what it serves (queues with their
    slots) and runs (tasks), how many slots are busy, when it started and was last seen (it
    renews its row every 10 s; a row 30 s old is taken for dead)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "worker_id": "web-1:4242:a1b2c3",
                    "host": "web-1",
                    "pid": 4242,
                    "role": "worker",
                    "version": "0.1.0",
                    "queues": {"default": 10, "emails": 2},
                    "tasks": ["echo", "http"],
                    "busy": 3,
                    "started_at": "2026-12-07T10:00:00Z",
                    "seen_at": "2026-12-07T10:05:00Z",
                }
            ]
        }
    )

    worker_id: str
    host: str
    pid: int
    role: str = Field(
        description="serve (API and workers), worker, api, or remote (a worker over the lease "
        'API: its worker_id is <key name>/<worker name>; tasks ["*"]: any task).'
    )
    version: str
    queues: dict[str, int] = Field(description="Runner slots per served queue.")
    tasks: list[str]
    busy: int = Field(description="Slots running a job at its last renewal.")
    started_at: datetime
    seen_at: datetime

    @classmethod
    def of(cls, process: LiveProcess) -> ProcessOut:
        """The API shape of a registry row."""
        return cls(
            worker_id=process.worker_id,
            host=process.host,
            pid=process.pid,
            role=process.role,
            version=process.version,
            queues=process.slots or dict.fromkeys(process.queues, 0),
            tasks=process.tasks,
            busy=process.busy,
            started_at=process.started_at,
            seen_at=process.seen_at,
        )


class ProcessList(BaseModel):
    """The live processes, oldest first, with their slots and busy slots summed."""

    items: list[ProcessOut]
    slots: int = Field(description="Runner slots over all live processes.")
    busy: int = Field(description="Busy slots over all live processes.")


@router.get("", response_model=ProcessList, openapi_extra=needs(Role.READ))
async def list_processes(service: Service) -> ProcessList:
    """The live processes (those that renewed their registry row in the last 30 s), oldest
    first: every ``serve``, ``worker`` and ``api`` process on this database. A process that
    stops cleanly removes its row; a dead one's row is ignored after 30 s and deleted after
    60 s. Errors: 503 when the database cannot be reached.
    """
    processes = await service.processes()
    items = [ProcessOut.of(p) for p in processes]
    return ProcessList(
        items=items,
        slots=sum(sum(p.queues.values()) for p in items),
        busy=sum(p.busy for p in items),
    )
