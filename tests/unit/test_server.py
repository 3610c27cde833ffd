"""``jobqueue serve``'s HTTP server set-up without a server: uvicorn's options from settings,
the bind address, the open-file limit, and the throttled logs of the edge."""

from __future__ import annotations

import logging
import resource
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from jobqueue import cli
from jobqueue.api.edge import EdgeLimits, GuardedHttpToolsProtocol
from jobqueue.api.server import bind_address, raise_open_file_limit, uvicorn_options
from jobqueue.logs import Throttled, ThrottleFilter
from jobqueue.settings import Settings


@pytest.mark.parametrize(
    ("host", "bound"),
    [
        ("[::1]", "::1"),
        (" [::1] ", "::1"),
        ("::1", "::1"),
        ("127.0.0.1", "127.0.0.1"),
        ("[::]", "::"),
    ],
)
def test_bind_address_strips_ipv6_brackets(host: str, bound: str) -> None:
    assert bind_address(host) == bound


def test_uvicorn_options_carry_the_edge_settings() -> None:
    settings = Settings(
        _env_file=None,
        limit_concurrency=123,
        keep_alive_timeout_seconds=7,
        headers_timeout_seconds=2.5,
        max_header_bytes=4096,
        max_headers=30,
    )
    options = uvicorn_options(settings, None)
    protocol = options.pop("http")
    assert options == {
        "ws": "none",
        "limit_concurrency": 123,
        "timeout_keep_alive": 7,
        "proxy_headers": False,  # applied inside the app, with FORWARDED_ALLOW_IPS
        "log_config": None,
        "access_log": False,
        "timeout_graceful_shutdown": None,
        "root_path": "",
    }
    assert issubclass(protocol, GuardedHttpToolsProtocol)
    assert issubclass(protocol, HttpToolsProtocol)
    assert protocol.limits == EdgeLimits(123, 7, 2.5, 4096, 30)
    # each server gets its own list of idle connections
    assert protocol.idle is not uvicorn_options(settings, None)["http"].idle


@pytest.fixture
def restore_open_files() -> Iterator[tuple[int, int]]:
    limits = resource.getrlimit(resource.RLIMIT_NOFILE)
    yield limits
    resource.setrlimit(resource.RLIMIT_NOFILE, limits)


def test_raise_open_file_limit_raises_soft_to_hard(restore_open_files: tuple[int, int]) -> None:
    _, hard = restore_open_files
    if hard == resource.RLIM_INFINITY or hard <= 256:
        pytest.skip(f"hard limit {hard}: nothing to raise to here")
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))

    assert raise_open_file_limit() == (256, hard)
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)


def test_throttled_logs_once_per_interval_with_the_count_left_out() -> None:
    now = [100.0]
    throttled = Throttled("http_refused", interval_seconds=1.0, clock=lambda: now[0])
    with structlog.testing.capture_logs() as logs:
        logged = [throttled(reason="x"), throttled(reason="x"), throttled(reason="x")]
        now[0] += 1.0
        logged.append(throttled(reason="x"))
    assert logged == [True, False, False, True]
    assert [(e["event"], e["suppressed"], e["log_level"]) for e in logs] == [
        ("http_refused", 0, "warning"),
        ("http_refused", 2, "warning"),
    ]


def test_throttle_filter_drops_repeats_within_a_second_and_the_dropped_messages() -> None:
    log_filter = ThrottleFilter(drop=("Exceeded concurrency limit.",))

    def record(message: str, level: int = logging.WARNING) -> logging.LogRecord:
        return logging.LogRecord("uvicorn.error", level, __file__, 1, message, None, None)

    assert log_filter.filter(record("Invalid HTTP request received."))
    assert not log_filter.filter(record("Invalid HTTP request received."))
    assert log_filter.filter(record("Another warning."))
    assert not log_filter.filter(record("Exceeded concurrency limit."))
    assert log_filter.filter(record("Started server process", logging.INFO))
    assert log_filter.filter(record("Started server process", logging.INFO))


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("[::1]", "http://[::1]:8000"),
        ("::1", "http://[::1]:8000"),
        ("0.0.0.0", "http://127.0.0.1:8000"),
    ],
)
def test_cli_client_default_url_from_host(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, host: str, url: str
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.setenv("JOBQUEUE_HOST", host)
    assert cli._base(None) == url


def test_uvicorn_options_root_path_from_settings() -> None:
    settings = Settings(_env_file=None, root_path="/jobqueue")
    assert uvicorn_options(settings, None)["root_path"] == "/jobqueue"


def test_settings_root_path_must_be_a_path_prefix() -> None:
    with pytest.raises(ValueError, match="root_path"):
        Settings(_env_file=None, root_path="jobqueue/")
