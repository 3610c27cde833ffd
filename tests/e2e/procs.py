"""Real ``jobqueue`` processes for the end-to-end tests: start, wait until ready, signal, read.

Every child runs with a clean environment (no inherited ``JOBQUEUE_*``) and a temporary working
directory, so no ``.env`` file or stray setting leaks in; ``PYTHONPATH`` is the repository root
so that ``JOBQUEUE_TASK_MODULES=tests.e2e.e2e_tasks`` imports.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
TASK_MODULE = "tests.e2e.e2e_tasks"
# The console script next to this interpreter (the venv's); ``-m jobqueue`` when there is none.
_SCRIPT = Path(sys.executable).with_name("jobqueue")
JOBQUEUE: list[str] = [str(_SCRIPT)] if _SCRIPT.is_file() else [sys.executable, "-m", "jobqueue"]


# uvicorn re-raises the signal that stopped it once its graceful shutdown is done; `serve`
# installs a SIGTERM handler that turns that into exit code 0.
CLEAN_SIGTERM_EXIT = 0


def free_port() -> int:
    """A TCP port that was free a moment ago (bind to port 0 and let the kernel pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def child_env(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without ``JOBQUEUE_*``, plus ``PYTHONPATH`` and overrides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBQUEUE_")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(overrides or {})
    return env


@dataclass
class CliResult:
    """How a ``jobqueue`` command ended."""

    returncode: int
    stdout: str
    stderr: str


async def run_cli(
    *args: str, cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 60.0
) -> CliResult:
    """Run ``jobqueue *args`` (or another command when ``args[0]`` is a path) to completion."""
    command = list(args) if args and Path(args[0]).is_absolute() else [*JOBQUEUE, *args]
    proc = await asyncio.create_subprocess_exec(
        *command,
        cwd=cwd,
        env=child_env(env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return CliResult(proc.returncode, out.decode(), err.decode())


@dataclass
class Server:
    """One ``jobqueue serve`` child process.

    Attributes:
        name: a label for logs, e.g. ``"server-1"``.
        url: base URL, e.g. ``http://127.0.0.1:43210``.
        proc: the child.
        log_path: its stdout and stderr, interleaved.
    """

    name: str
    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    _log_file: IO[bytes] = field(repr=False)

    @property
    def returncode(self) -> int | None:
        """The exit code, or None while it runs."""
        return self.proc.poll()

    def tail(self, lines: int = 60) -> str:
        """The last ``lines`` lines of the server's output."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"(no log: {exc})"
        return "\n".join(text.splitlines()[-lines:])

    async def wait(self, timeout: float) -> int:
        """Wait for the process to exit; its exit code.

        Raises:
            AssertionError: it still runs after ``timeout`` seconds.
        """
        deadline = asyncio.get_running_loop().time() + timeout
        while (code := self.proc.poll()) is None:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{self.name} still running after {timeout} s")
            await asyncio.sleep(0.02)
        return code

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Send ``sig`` and wait for the exit; the exit code (``-9`` after ``SIGKILL``)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = await self.wait(timeout)
        self._log_file.close()
        return code

    def terminate(self, grace_seconds: float = 5.0) -> None:
        """Teardown: SIGTERM if still running (the embedded PostgreSQL stops with it), SIGKILL
        after ``grace_seconds``; reap it."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(grace_seconds)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log_file.close()


class ServerFactory:
    """Starts servers for one test; ``servers`` lists them for teardown and failure reports."""

    def __init__(self, workdir: Path, base_env: Mapping[str, str]) -> None:
        self.workdir = workdir
        self.base_env = dict(base_env)
        self.servers: list[Server] = []

    def _spawn(self, env: Mapping[str, str], port: int, command: str = "serve") -> Server:
        name = f"{command}-{len(self.servers) + 1}"
        log_path = self.workdir / f"{name}.log"
        log_file = log_path.open("ab")
        proc = subprocess.Popen(
            [*JOBQUEUE, command, "--host", "127.0.0.1", "--port", str(port)],
            cwd=self.workdir,
            env=child_env({**self.base_env, **env}),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        server = Server(name, f"http://127.0.0.1:{port}", proc, log_path, log_file)
        self.servers.append(server)
        return server

    async def start(
        self, env: Mapping[str, str], ready_timeout: float = 30.0, command: str = "serve"
    ) -> Server:
        """Start ``jobqueue <command>`` (``serve``, ``worker`` or ``api``) with ``env`` on a
        free port; return once /readyz is 200.

        Retries on a new port when the chosen one was taken in the meantime.

        Raises:
            AssertionError: the process exited, its pool died, or it was not ready within
                ``ready_timeout`` s (a failed test's report shows the end of each server log).
        """
        for _ in range(3):
            server = self._spawn(env, free_port(), command)
            if await _wait_ready(server, ready_timeout):
                return server
            if "address already in use" not in server.tail().lower():
                break
        raise AssertionError(
            f"{server.name} exited with {server.returncode} before /readyz answered 200"
        )


async def _wait_ready(server: Server, timeout: float) -> bool:
    """Poll ``/readyz`` until 200 (True) or the process exits (False)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: Any = None
    async with httpx.AsyncClient(base_url=server.url, timeout=2.0) as client:
        while server.proc.poll() is None:
            with contextlib.suppress(httpx.TransportError):
                response = await client.get("/readyz")
                if response.status_code == 200:
                    return True
                last = response.text
            if loop.time() > deadline:
                raise AssertionError(
                    f"{server.name} not ready within {timeout} s (last /readyz: {last})"
                )
            await asyncio.sleep(0.05)
    return False


def read_records(path: Path) -> dict[int, list[int]]:
    """The ``record`` task's file as ``{job_id: [attempt, ...]}`` in run order; {} if absent."""
    runs: dict[int, list[int]] = {}
    with contextlib.suppress(FileNotFoundError):
        for line in path.read_text().splitlines():
            job_id, attempt = line.split()
            runs.setdefault(int(job_id), []).append(int(attempt))
    return runs
