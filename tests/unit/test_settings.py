"""Settings: names, defaults and validation messages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import AliasChoices, ValidationError
from pydantic.fields import FieldInfo

from jobqueue.settings import Settings


def test_settings_defaults_match_env_example() -> None:
    s = Settings(_env_file=None)
    assert (s.database_url, s.host, s.port, s.concurrency) == (None, "127.0.0.1", 8000, 10)
    assert s.queue_names == ["default"]
    assert (s.lease_seconds, s.poll_interval_seconds, s.shutdown_grace_seconds) == (30, 1, 30)
    assert (s.auto_migrate, s.max_payload_bytes) == (True, 1_048_576)
    assert str(s.data_dir) == ".jobqueue"


def test_settings_read_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBQUEUE_QUEUES", " default, emails ,,default")
    monkeypatch.setenv("JOBQUEUE_CONCURRENCY", "4")
    monkeypatch.setenv("JOBQUEUE_TASK_MODULES", "a.b, c")
    s = Settings(_env_file=None)
    assert s.queue_names == ["default", "emails"]
    assert s.concurrency == 4
    assert s.task_module_names == ["a.b", "c"]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("JOBQUEUE_QUEUES", " , ", "at least one queue"),
        ("JOBQUEUE_QUEUES", "bad queue", "is not valid"),
        ("JOBQUEUE_CONCURRENCY", "0", "greater than 0"),
        ("JOBQUEUE_PORT", "70000", "less than or equal to 65535"),
    ],
)
def test_settings_bad_value_names_the_problem(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=message):
        Settings(_env_file=None)


ENV_EXAMPLE = Path(__file__).resolve().parents[2] / ".env.example"


def env_name(name: str, info: FieldInfo) -> str:
    alias = info.validation_alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return f"JOBQUEUE_{name.upper()}"


def test_env_example_lists_every_setting() -> None:
    listed = set(re.findall(r"^#? ?([A-Z][A-Z_]+)=", ENV_EXAMPLE.read_text(), re.M))
    fields = {env_name(name, info) for name, info in Settings.model_fields.items()}
    assert fields - listed == set()
    assert listed - fields == {"JOBQUEUE_CLIENT_KEY"}  # read by the CLI's client commands


def test_env_example_values_are_the_defaults() -> None:
    assert Settings(_env_file=ENV_EXAMPLE) == Settings(_env_file=None)
