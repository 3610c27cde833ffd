"""The CLI's options take the API's ranges: a value outside is a usage error (exit 2) naming the
option and the bound it breaks, before any request is sent."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from jobqueue import cli
from jobqueue.api.app import create_app
from jobqueue.encoding import MAX_ID
from jobqueue.settings import TEN_YEARS_SECONDS, Settings

NOWHERE = ["--url", "http://127.0.0.1:1"]  # nothing listens: a request fails at once


def flat(text: str) -> str:
    """``text`` without rich's box and line breaks, so that a wrapped message reads whole."""
    return " ".join(text.replace("│", " ").split())


def openapi() -> dict[str, Any]:
    schema: dict[str, Any] = create_app(Settings(_env_file=None)).openapi()
    return schema


def test_cli_bounds_are_the_apis() -> None:
    schema = openapi()
    create = schema["components"]["schemas"]["JobCreate"]["properties"]

    def number(field: str) -> dict[str, Any]:
        spec: dict[str, Any] = create[field]
        return next((o for o in spec.get("anyOf", [spec]) if o.get("type") != "null"), spec)

    listing = {p["name"]: p["schema"] for p in schema["paths"]["/jobs"]["get"]["parameters"]}
    one = {p["name"]: p["schema"] for p in schema["paths"]["/jobs/{job_id}"]["get"]["parameters"]}
    wait = next(o for o in one["wait_seconds"]["anyOf"] if o.get("type") == "number")

    assert (number("priority")["minimum"], number("priority")["maximum"]) == (
        -cli.MAX_PRIORITY,
        cli.MAX_PRIORITY,
    )
    assert (number("max_attempts")["minimum"], number("max_attempts")["maximum"]) == (
        1,
        cli.MAX_ATTEMPTS,
    )
    timeout = number("timeout_seconds")
    assert (timeout["exclusiveMinimum"], timeout["maximum"]) == (0, cli.MAX_TIMEOUT_SECONDS)
    delay = number("delay_seconds")
    assert (delay["minimum"], delay["maximum"]) == (0, TEN_YEARS_SECONDS)
    assert (listing["limit"]["minimum"], listing["limit"]["maximum"]) == (1, cli.MAX_PAGE_SIZE)
    assert (wait["exclusiveMinimum"], wait["maximum"]) == (0, cli.MAX_WAIT_SECONDS)
    assert (one["job_id"]["minimum"], one["job_id"]["maximum"]) == (1, MAX_ID)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["list", "--limit", "0"], "'--limit': Input should be greater than or equal to 1"),
        (["list", "--limit", "-5"], "'--limit': Input should be greater than or equal to 1"),
        (["list", "--limit", "1001"], "'--limit': Input should be less than or equal to 1000"),
        (["get", "0"], "'job_id': Input should be greater than or equal to 1"),
        (["cancel", "0"], "'job_id': Input should be greater than or equal to 1"),
        (["retry", str(MAX_ID + 1)], f"'job_id': Input should be less than or equal to {MAX_ID}"),
        (["attempts", "0"], "'job_id': Input should be greater than or equal to 1"),
        (["get", "1", "--wait", "0"], "'--wait': 0 is not in the range 0<x<=60."),
        (["get", "1", "--wait", "60.5"], "'--wait': Input should be less than or equal to 60"),
        (["enqueue", "echo", "--priority", "101"], "'--priority': Input should be less than"),
        (["enqueue", "echo", "--priority", "-101"], "'--priority': Input should be greater"),
        (["enqueue", "echo", "--max-attempts", "0"], "'--max-attempts': Input should be greater"),
        (
            ["enqueue", "echo", "--timeout-seconds", "0"],
            "'--timeout-seconds': 0 is not in the range 0<x<=86400.",
        ),
        (
            ["enqueue", "echo", "--delay-seconds", "-1"],
            "'--delay-seconds': Input should be greater than or equal to 0",
        ),
    ],
)
def test_cli_option_out_of_range_is_usage_error_naming_the_bound(
    args: list[str], message: str
) -> None:
    result = CliRunner().invoke(cli.app, [*args, *NOWHERE])

    assert result.exit_code == 2
    assert f"Invalid value for {message}" in flat(result.output)
    assert "cannot reach" not in result.output  # refused before any request
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["list", "--limit", "1"],
        ["list", "--limit", "1000"],
        ["get", str(MAX_ID), "--wait", "60"],
        ["enqueue", "echo", "--priority", "-100", "--max-attempts", "1000"],
        ["enqueue", "echo", "--timeout-seconds", "86400", "--delay-seconds", "0"],
    ],
)
def test_cli_option_at_its_bound_is_sent(args: list[str]) -> None:
    result = CliRunner().invoke(cli.app, [*args, *NOWHERE])

    assert result.exit_code == 2
    assert "error: cannot reach http://127.0.0.1:1/jobs" in result.output
