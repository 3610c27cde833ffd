"""Settings: names, defaults and validation messages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import AliasChoices, ValidationError
from pydantic.fields import FieldInfo

from jobqueue.settings import (
    OTHER_VARIABLES,
    Settings,
    configured_variable_names,
    known_variables,
    settings_errors,
    unknown_variables,
    variable_name,
)


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
        # 0.0001 s: an idle service ran ~2,700 statistics reads a second (fresh-user finding).
        ("JOBQUEUE_VACUUM_INTERVAL_SECONDS", "0.0001", "greater than or equal to 0.5"),
        ("JOBQUEUE_VACUUM_DEAD_ROWS", "-1", "greater than or equal to 0"),
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
    monkeypatch.setenv("JOBQUEUE_REMOTE_QUEUES", " reports, archive ")
    s = Settings(_env_file=None)
    assert s.queue_names == ["default", "emails"]
    assert s.known_queue_names == frozenset({"default", "emails", "reports", "archive"})


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


def test_variable_name_is_env_name_of_every_field() -> None:
    assert {name: variable_name(name) for name in Settings.model_fields} == {
        name: env_name(name, info) for name, info in Settings.model_fields.items()
    }


def test_env_example_lists_every_setting() -> None:
    listed = set(re.findall(r"^#? ?([A-Z][A-Z_]+)=", ENV_EXAMPLE.read_text(), re.M))
    fields = {env_name(name, info) for name, info in Settings.model_fields.items()}
    assert fields - listed == set()
    assert listed - fields == {"JOBQUEUE_CLIENT_KEY"}  # read by the CLI's client commands


def test_env_example_values_are_the_defaults() -> None:
    assert Settings(_env_file=ENV_EXAMPLE) == Settings(_env_file=None)


def refusal(monkeypatch: pytest.MonkeyPatch, **env: str) -> list[str]:
    """The lines :func:`settings_errors` gives for ``env`` (the settings must be refused)."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as refused:
        Settings(_env_file=None)
    return settings_errors(refused.value)


@pytest.mark.parametrize("value", ["0.05", "0.999"])
def test_settings_lease_under_one_second_is_refused_saying_what_to_set(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    assert refusal(monkeypatch, JOBQUEUE_LEASE_SECONDS=value) == [
        f"JOBQUEUE_LEASE_SECONDS must be at least 1 s, got {float(value):g}: the heartbeat "
        "renews a lease every third of it, and a shorter lease is lost to ordinary database "
        "delays (every job would run again); set JOBQUEUE_LEASE_SECONDS=1 or more (default 30)"
    ]


def test_settings_lease_of_one_second_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBQUEUE_LEASE_SECONDS", "1")
    assert Settings(_env_file=None).lease_seconds == 1.0


def test_settings_concurrency_over_1000_is_refused_and_1000_accepted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert refusal(monkeypatch, JOBQUEUE_CONCURRENCY="1001") == [
        "JOBQUEUE_CONCURRENCY must be 1 to 1000, got 1001: set JOBQUEUE_CONCURRENCY=1000 or "
        "less, and run more processes for more jobs at once"
    ]
    monkeypatch.setenv("JOBQUEUE_CONCURRENCY", "1000")
    assert Settings(_env_file=None).concurrency == 1000


def test_settings_request_smaller_than_payload_is_refused_and_equal_accepted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert refusal(
        monkeypatch, JOBQUEUE_MAX_PAYLOAD_BYTES="2000", JOBQUEUE_MAX_REQUEST_BYTES="1999"
    ) == [
        "JOBQUEUE_MAX_REQUEST_BYTES (1999) is smaller than JOBQUEUE_MAX_PAYLOAD_BYTES (2000): a "
        "payload of the allowed size could never arrive; set JOBQUEUE_MAX_REQUEST_BYTES to at "
        "least 2000, or lower JOBQUEUE_MAX_PAYLOAD_BYTES"
    ]
    monkeypatch.setenv("JOBQUEUE_MAX_REQUEST_BYTES", "2000")
    s = Settings(_env_file=None)
    assert (s.max_request_bytes, s.max_payload_bytes) == (2000, 2000)


@pytest.mark.parametrize(
    ("queues", "remote", "what"),
    [
        ("default,emails=2", " reports, emails", "queue 'emails' is"),
        ("default,emails", "emails,default", "queues 'emails', 'default' are"),
    ],
)
def test_settings_queue_both_served_and_remote_is_refused(
    monkeypatch: pytest.MonkeyPatch, queues: str, remote: str, what: str
) -> None:
    assert refusal(monkeypatch, JOBQUEUE_QUEUES=queues, JOBQUEUE_REMOTE_QUEUES=remote) == [
        f"{what} in both JOBQUEUE_QUEUES and JOBQUEUE_REMOTE_QUEUES: list a queue this process "
        "runs in JOBQUEUE_QUEUES only, and one that only other processes run in "
        "JOBQUEUE_REMOTE_QUEUES only"
    ]


@pytest.mark.parametrize("value", ["201", "900"])
def test_settings_payload_depth_over_200_is_refused(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    assert refusal(monkeypatch, JOBQUEUE_MAX_PAYLOAD_DEPTH=value) == [
        f"JOBQUEUE_MAX_PAYLOAD_DEPTH must be 1 to 200, got {value}: JSON nested deeper than about "
        "255 levels cannot be serialised, so such a job could be stored but never read back; set "
        "JOBQUEUE_MAX_PAYLOAD_DEPTH=200 or less (default 64)"
    ]


def test_settings_payload_depth_200_is_accepted_and_documented_as_bounding_results(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JOBQUEUE_MAX_PAYLOAD_DEPTH", "200")
    assert Settings(_env_file=None).max_payload_depth == 200
    description = Settings.model_fields["max_payload_depth"].description or ""
    assert "a result nested deeper fails its attempt" in description
    comments = " ".join(line.lstrip("# ") for line in ENV_EXAMPLE.read_text().splitlines())
    assert "1 to 200" in comments
    assert "It bounds job results too: a result nested deeper fails its attempt." in comments


def test_settings_errors_name_the_variable_of_a_constraint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert refusal(monkeypatch, JOBQUEUE_PORT="0", JOBQUEUE_CONCURRENCY="0") == [
        "JOBQUEUE_PORT: Input should be greater than or equal to 1",
        "JOBQUEUE_CONCURRENCY: Input should be greater than 0",
    ]


def test_unknown_variables_name_the_likely_meant_one() -> None:
    names = [
        "PATH",
        "JOBQUEUE_CONCURENCY",
        "jobqueue_lease_second",
        "JOBQUEUE_DATABASE_URI",
        "JOBQUEUE_ZZZ",
        "JOBQUEUE_PORT",
        "jobqueue_port",
        "JOBQUEUE_FORWARDED_ALLOW_IPS",
        "FORWARDED_ALLOW_IPS",
        *OTHER_VARIABLES,
    ]
    assert unknown_variables(names) == [
        ("JOBQUEUE_CONCURENCY", "JOBQUEUE_CONCURRENCY"),
        ("JOBQUEUE_DATABASE_URI", "JOBQUEUE_DATABASE_URL"),
        ("JOBQUEUE_LEASE_SECOND", "JOBQUEUE_LEASE_SECONDS"),
        ("JOBQUEUE_ZZZ", None),
    ]


REPO = Path(__file__).resolve().parents[2]


def test_every_jobqueue_variable_the_project_names_is_known() -> None:
    """No warning for a variable the project reads itself: every ``JOBQUEUE_*`` name in the
    source, the tests, the benchmarks, the Makefile, the Dockerfile and the docs is known."""
    files = [
        *(REPO / "src").rglob("*.py"),
        *(REPO / "tests").rglob("*.py"),
        *(REPO / "bench").rglob("*.py"),
        *(REPO / "docs").rglob("*.md"),
        REPO / "README.md",
        REPO / "Makefile",
        REPO / "Dockerfile",
        ENV_EXAMPLE,
    ]
    named = {
        name
        for path in files
        for name in re.findall(r"JOBQUEUE_[A-Z0-9_]*[A-Z0-9]\b", path.read_text())
    }
    typos = {"JOBQUEUE_CONCURENCY", "JOBQUEUE_LEASE_SECOND", "JOBQUEUE_DATABASE_URI"}
    typos |= {"JOBQUEUE_ZZZ", "JOBQUEUE_QUEUS"}  # the typos of these tests
    assert len(named) > 40
    assert named - typos - known_variables() == set()
    assert set(OTHER_VARIABLES) <= named


def test_configured_variable_names_read_the_environment_and_dot_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("jobqueue_queus=default\nJOBQUEUE_PORT=8001\n")
    monkeypatch.chdir(tmp_path)
    names = configured_variable_names({"JOBQUEUE_CONCURENCY": "4", "HOME": "/root"})
    assert names == ["HOME", "JOBQUEUE_CONCURENCY", "JOBQUEUE_PORT", "JOBQUEUE_QUEUS"]
    assert unknown_variables(names) == [
        ("JOBQUEUE_CONCURENCY", "JOBQUEUE_CONCURRENCY"),
        ("JOBQUEUE_QUEUS", "JOBQUEUE_QUEUES"),
    ]
