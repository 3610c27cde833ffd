"""The task registry: names the API can reach, one function per name."""

from __future__ import annotations

import pytest

from jobqueue.errors import ConfigurationError
from jobqueue.tasks.registry import JobContext, TaskRegistry


async def _noop(ctx: JobContext) -> None:
    return None


async def _other(ctx: JobContext) -> None:
    return None


@pytest.mark.parametrize("name", ["resize", "emails.send", "a:b-c_d", "x" * 200])
def test_register_name_the_api_accepts_is_registered(name: str) -> None:
    registry = TaskRegistry()
    registry.register(name, _noop)
    assert registry.names() == [name]


@pytest.mark.parametrize("name", ["bad name with spaces", "", "x" * 201, "é", "a/b"])
def test_register_name_the_api_refuses_is_configuration_error(name: str) -> None:
    """The tester's case: ``@task("bad name with spaces")`` started and was listed as known,
    but ``POST /jobs`` could never name it (422: the task pattern)."""
    registry = TaskRegistry()
    with pytest.raises(ConfigurationError) as raised:
        registry.register(name, _noop)
    assert str(raised.value) == (
        f"task name {name[:200]!r} is not 1 to 200 of A-Za-z0-9_.:- "
        "(what the API accepts as a job's task): rename it"
    )
    assert registry.names() == []


def test_register_same_name_other_function_is_configuration_error() -> None:
    registry = TaskRegistry()
    registry.register("resize", _noop)
    with pytest.raises(ConfigurationError, match=r"^task name 'resize' is registered twice$"):
        registry.register("resize", _other)
