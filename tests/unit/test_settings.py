"""Settings: names, defaults and validation messages."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

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


def test_env_example_lists_every_setting_and_nothing_else() -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / ".env.example").read_text()
    listed = {
        line.lstrip("# ").split("=", 1)[0]
        for line in text.splitlines()
        if line.lstrip("# ").startswith("JOBQUEUE_") and "=" in line
    }
    fields = {f"JOBQUEUE_{name.upper()}" for name in Settings.model_fields}
    client_only = {"JOBQUEUE_URL", "JOBQUEUE_CLIENT_KEY"}  # read by the CLI's client commands
    assert listed - client_only == fields
