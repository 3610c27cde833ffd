"""A private pgbouncer for the tests: transaction pooling in front of the test server.

Debian's ``pgbouncer`` (``/usr/sbin/pgbouncer``; ``make test`` installs it when it is missing
and the user is root). Each instance gets a temporary directory with a generated
``pgbouncer.ini`` and ``userlist.txt`` and a free port on 127.0.0.1; every database of the test
server is reachable through it (the ``*`` fallback entry), so the tests' per-test databases need
no configuration. pgbouncer refuses to run as root: as root it is started with ``-u nobody``.
Its log (stderr) goes to a file the tests show when a start fails.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from sqlalchemy.engine import make_url

from tests.conftest import ADMIN_URL
from tests.e2e.procs import free_port

PGBOUNCER = Path("/usr/sbin/pgbouncer")
"""Debian's binary (package ``pgbouncer``)."""

SERVER_POOL_SIZE = 10
"""Server connections per database and user: fewer than an app's pool can open (pool size plus
as many again), so client connections really share server connections."""

UNPRIVILEGED_USER = "nobody"


def missing_reason() -> str | None:
    """Why the pgbouncer tests cannot run here, or None when they can."""
    if not os.access(PGBOUNCER, os.X_OK):
        return (
            f"no {PGBOUNCER}: install Debian's pgbouncer (`make test` does when run as root; "
            "else `sudo apt-get install pgbouncer`)"
        )
    return None


def _config(port: int, directory: Path) -> str:
    server = make_url(ADMIN_URL)
    return f"""\
[databases]
* = host={server.host or "127.0.0.1"} port={server.port or 5432}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {directory / "userlist.txt"}
pool_mode = transaction
default_pool_size = {SERVER_POOL_SIZE}
max_client_conn = 1000
ignore_startup_parameters = extra_float_digits
"""


class Pgbouncer:
    """One running pgbouncer; use :meth:`start`, :meth:`url_for`, :meth:`stop`.

    Attributes:
        port: its TCP port on 127.0.0.1.
        directory: its configuration and log.
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="jobqueue-pgbouncer-"))
        self.log_path = self.directory / "pgbouncer.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def url_for(self, database_url: str) -> str:
        """``database_url`` (a test database on the server) reached through this pgbouncer."""
        return (
            make_url(database_url)
            .set(host="127.0.0.1", port=self.port)
            .render_as_string(hide_password=False)
        )

    def log(self) -> str:
        """What pgbouncer wrote so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"(no log: {exc})"

    def start(self, timeout: float = 10.0) -> None:
        """Write the configuration, start pgbouncer, return once it accepts connections
        (blocking: a session fixture starts it).

        Raises:
            AssertionError: it exited or did not listen within ``timeout`` seconds (the
                message quotes its log).
        """
        user = make_url(ADMIN_URL).username or "postgres"
        (self.directory / "userlist.txt").write_text(f'"{user}" ""\n')
        (self.directory / "pgbouncer.ini").write_text(_config(self.port, self.directory))
        # The unprivileged user must read the files; mkdtemp made the directory 0700.
        self.directory.chmod(0o755)
        for name in ("userlist.txt", "pgbouncer.ini"):
            (self.directory / name).chmod(0o644)
        command = [str(PGBOUNCER), str(self.directory / "pgbouncer.ini")]
        if os.geteuid() == 0:
            command[1:1] = ["-u", UNPRIVILEGED_USER]
        with self.log_path.open("ab") as log_file:
            self._proc = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT
            )
        self._wait_listening(timeout)

    def _wait_listening(self, timeout: float) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                raise AssertionError(
                    f"pgbouncer exited with {self._proc.returncode}:\n{self.log()}"
                )
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"pgbouncer not listening within {timeout} s:\n{self.log()}"
                    ) from None
                time.sleep(0.02)
                continue
            return

    def stop(self) -> None:
        """Stop it (SIGTERM: immediate shutdown; SIGKILL after 5 s) and remove its directory."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        shutil.rmtree(self.directory, ignore_errors=True)
