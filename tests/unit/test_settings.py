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


ENV_EXAMPLE = Path(__file__).resolve().parents[2] / ".env.example"


def test_settings_pgbouncer_switches_default_on_and_read_from_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert (Settings(_env_file=None).db_statement_cache, Settings(_env_file=None).listen) == (
        True,
        True,
    )
    monkeypatch.setenv("JOBQUEUE_DB_STATEMENT_CACHE", "false")
    monkeypatch.setenv("JOBQUEUE_LISTEN", "false")
    s = Settings(_env_file=None)
    assert (s.db_statement_cache, s.listen) == (False, False)


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


def test_settings_known_queues_are_served_and_remote_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBQUEUE_QUEUES", "default=4,emails")
    monkeypatch.setenv("JOBQUEUE_REMOTE_QUEUES", " reports, emails ")
    s = Settings(_env_file=None)
    assert s.queue_names == ["default", "emails"]
    assert s.known_queue_names == frozenset({"default", "emails", "reports"})


def test_settings_new_limits_defaults() -> None:
    s = Settings(_env_file=None)
    assert (s.remote_queues, s.max_long_polls, s.metrics_max_label_values) == ("", 1000, 100)
    assert s.known_queue_names == frozenset({"default"})


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("JOBQUEUE_REMOTE_QUEUES", "ok,bad queue", "queue name 'bad queue' is not valid"),
        ("JOBQUEUE_QUEUES", "default=²", "concurrency must be 1 to 1000, got .²."),
        ("JOBQUEUE_QUEUES", "default=5,emails=2,emails=3", "queue .emails. is given twice"),
        ("JOBQUEUE_MAX_LONG_POLLS", "0", "greater than or equal to 1"),
        ("JOBQUEUE_METRICS_MAX_LABEL_VALUES", "0", "greater than or equal to 1"),
    ],
)
def test_settings_bad_limit_names_the_problem(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=message):
        Settings(_env_file=None)


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
