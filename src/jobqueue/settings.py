"""Service settings: environment variables with the ``JOBQUEUE_`` prefix, and a ``.env`` file.

Built once, in ``create_app`` or the CLI, and passed down as arguments: no module reads settings
from a global. Every variable, its default and its unit is listed in ``.env.example``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, PositiveFloat, PositiveInt, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_QUEUE_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")


def parse_names(value: str) -> list[str]:
    """Split a comma-separated list, dropping blanks and surrounding spaces.

    Args:
        value: e.g. ``"default, emails"``.

    Returns:
        e.g. ``["default", "emails"]``, in the given order, without duplicates.
    """
    names: list[str] = []
    for part in value.split(","):
        name = part.strip()
        if name and name not in names:
            names.append(name)
    return names


class Settings(BaseSettings):
    """All settings of one jobqueue process.

    Raises:
        pydantic.ValidationError: on a value of the wrong type or out of range; the message names
            the variable.
    """

    model_config = SettingsConfigDict(
        env_prefix="JOBQUEUE_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL, e.g. postgresql+asyncpg://user:pw@host:5432/db. "
        "Unset: start an embedded PostgreSQL under data_dir.",
    )
    data_dir: Path = Field(default=Path(".jobqueue"), description="Embedded PostgreSQL data.")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    concurrency: PositiveInt = Field(default=10, description="Worker tasks in this process.")
    queues: str = Field(default="default", description="Comma-separated queues this process runs.")
    lease_seconds: PositiveFloat = Field(default=30.0, description="Lease of a claimed job, s.")
    poll_interval_seconds: PositiveFloat = Field(default=1.0, description="Safety-net poll, s.")
    shutdown_grace_seconds: float = Field(default=30.0, ge=0, description="Drain time, s.")
    task_modules: str = Field(default="", description="Comma-separated modules to import.")
    auto_migrate: bool = True
    max_payload_bytes: PositiveInt = Field(default=1_048_576, description="JSON payload, bytes.")
    max_attempts: int = Field(default=3, ge=1, le=1000, description="Default attempts per job.")
    backoff_base_seconds: float = Field(default=1.0, ge=0, description="Retry backoff base, s.")
    backoff_max_seconds: float = Field(default=3600.0, ge=0, description="Retry backoff cap, s.")
    default_timeout_seconds: PositiveFloat = Field(default=300.0, description="Per attempt, s.")
    rescue_interval_seconds: PositiveFloat = Field(default=5.0, description="Rescuer period, s.")
    workers_enabled: bool = Field(default=True, description="False: API only, no worker pool.")
    db_pool_size: PositiveInt = Field(default=10, description="SQLAlchemy pool size.")
    db_pool_timeout_seconds: PositiveFloat = Field(default=10.0, description="Pool wait, s.")
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("queues")
    @classmethod
    def _check_queues(cls, value: str) -> str:
        names = parse_names(value)
        if not names:
            raise ValueError("give at least one queue name, e.g. JOBQUEUE_QUEUES=default")
        for name in names:
            if not _QUEUE_NAME.match(name):
                raise ValueError(
                    f"queue name {name!r} is not valid: use 1-100 letters, digits, '_.:-'"
                )
        return value

    @property
    def queue_names(self) -> list[str]:
        """The queues this process serves, e.g. ``["default"]``."""
        return parse_names(self.queues)

    @property
    def task_module_names(self) -> list[str]:
        """The modules to import at start so that their ``@task`` functions register."""
        return parse_names(self.task_modules)
