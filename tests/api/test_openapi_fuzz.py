"""Schemathesis against the app's own OpenAPI schema, in-process (ASGI), on a real PostgreSQL.

A bounded, deterministic run (fixed seed, derandomized, a few hundred requests, under a minute):
the examples, coverage (boundary and type-violating values), fuzzing (positive and negative
generation) and stateful (create → read → cancel → retry links) phases. Two checks must hold for
every response: no 5xx (``not_a_server_error``) and the body conforms to the documented schema
(``response_schema_conformance``). Each fault a run found is fixed in ``src`` and pinned by a
regression test of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
import schemathesis.engine
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, events
from schemathesis.generation import GenerationMode
from schemathesis.python import asgi

from jobqueue.api.app import create_app, with_http_task
from jobqueue.settings import Settings
from jobqueue.tasks.registry import TaskRegistry

SEED = 20_261_129
MAX_EXAMPLES = 12
"""Per operation and generation mode in the fuzzing phase; the other phases add their own."""


@dataclass
class FuzzReport:
    """What one run did: requests by generation mode, and every failed check or error."""

    cases: dict[str, int] = field(default_factory=lambda: {"positive": 0, "negative": 0})
    statuses: dict[int, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def fuzz_config() -> SchemathesisConfig:
    """The run's configuration: the two checks only, a fixed seed, no example database."""
    return SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "generation": {
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "database": "none",
                "mode": "all",
            },
            "checks": {
                "enabled": False,
                "not_a_server_error": {"enabled": True},
                "response_schema_conformance": {"enabled": True},
            },
            "continue-on-failure": True,
            "request-timeout": 20,
            # A loopback name: without API keys the app answers no other Host (421).
            "base-url": "http://localhost",
        }
    )


def run_schemathesis(app: Any) -> FuzzReport:
    """Run every phase against ``app`` (blocking: the app runs on schemathesis' own loop)."""
    report = FuzzReport()
    # Loaded from the app rather than fetched: schemathesis fetches with `Host: testserver`.
    schema = schemathesis.openapi.from_dict(app.openapi(), config=fuzz_config())
    schema.app = app
    try:
        for event in schemathesis.engine.from_schema(schema).execute():
            if isinstance(event, events.ScenarioFinished):
                _record(report, event)
            elif isinstance(event, events.NonFatalError):
                report.errors.append(f"NonFatalError: {event.info.message}")
            elif isinstance(event, events.FatalError):
                report.errors.append(f"FatalError: {event.exception!r}")
    finally:
        asgi.shutdown_lifespans()
    return report


def _record(report: FuzzReport, event: events.ScenarioFinished) -> None:
    for node in event.recorder.cases.values():
        meta = node.value.meta
        mode = meta.generation.mode if meta is not None else GenerationMode.POSITIVE
        report.cases[str(mode)] += 1
    for interaction in event.recorder.interactions.values():
        if interaction.response is not None:
            status = interaction.response.status_code
            report.statuses[status] = report.statuses.get(status, 0) + 1
    for case_id, checks in event.recorder.checks.items():
        for check in checks:
            if check.status is Status.FAILURE:
                case = event.recorder.cases[case_id].value
                info = check.failure_info
                title = info.failure.title if info is not None else ""
                report.failures.append(f"{check.name}: {title}: {case.as_curl_command()}")


@pytest.mark.fuzz
async def test_openapi_fuzzed_requests_get_no_5xx_and_schema_conformant_responses(
    make_settings: Callable[..., Settings], registry: TaskRegistry
) -> None:
    # http jobs may only call a host that does not exist: the fuzzer must not reach the network.
    # Lease long-polls end at once: the fuzzer asks for waits of up to 20 s.
    settings = make_settings(
        http_allowed_hosts="jobqueue.invalid", shutdown_grace_seconds=0, lease_max_wait_seconds=0
    )
    # Schemathesis runs the app's lifespan (and so its worker pool) on a loop of its own.
    app = create_app(settings, registry=with_http_task(registry, settings))

    report = await asyncio.to_thread(run_schemathesis, app)

    print(f"schemathesis: {report.cases}, statuses {sorted(report.statuses.items())}")
    assert report.errors == []
    assert 421 not in report.statuses  # the requests reached the routes (a loopback Host)
    assert report.statuses.get(201, 0) > 0
    assert report.failures == []
    assert report.cases["positive"] >= 150
    assert report.cases["negative"] >= 150
