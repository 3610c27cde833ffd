"""Task modules named in JOBQUEUE_TASK_MODULES are found in the current directory too, and the
HTTP client library never logs a webhook's URL."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from jobqueue.logs import configure_logging
from jobqueue.tasks.registry import default_registry, import_task_modules


def test_import_task_modules_finds_a_package_in_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "cwd_app_5f1c"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "tasks.py").write_text(
        "from jobqueue import task\n\n@task('cwd_task_5f1c')\nasync def t(ctx):\n    return 1\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    try:
        import_task_modules(["cwd_app_5f1c.tasks"])
        assert "cwd_task_5f1c" in default_registry
    finally:
        default_registry.tasks.pop("cwd_task_5f1c", None)
        for name in ("cwd_app_5f1c.tasks", "cwd_app_5f1c"):
            sys.modules.pop(name, None)


@pytest.mark.parametrize("level", ["debug", "info"])
def test_configure_logging_keeps_httpx_request_lines_out(level: str) -> None:
    root = logging.getLogger()
    handlers, root_level = root.handlers[:], root.level
    try:
        configure_logging("json", level)
        assert logging.getLogger("httpx").getEffectiveLevel() == logging.WARNING
        assert logging.getLogger("httpcore").getEffectiveLevel() == logging.WARNING
    finally:
        root.handlers[:] = handlers
        root.setLevel(root_level)
