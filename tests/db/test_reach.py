"""``db/reach.py``: one connection opened at start against the real PostgreSQL, and the one line
that says why it could not be, with a hint and never the password."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from jobqueue.db.reach import check_connection, explain_connect_error
from jobqueue.errors import DatabaseUnavailable
from tests.conftest import ADMIN_URL

PASSWORD = "pw-Zq8s3cret"  # the test server trusts local connections: it is never checked
SERVER = make_url(ADMIN_URL)
TARGET = f"{SERVER.host or 'localhost'}:{SERVER.port or 5432}"


def url_to(database: str, **parts: str | int) -> str:
    """A URL to ``database`` on the test server, with the password and ``parts`` set."""
    url = SERVER.set(drivername="postgresql+asyncpg", password=PASSWORD, database=database)
    return url.set(**parts).render_as_string(hide_password=False)  # type: ignore[arg-type]


async def refusal(url: str, timeout_seconds: float = 10.0) -> str:
    with pytest.raises(DatabaseUnavailable) as refused:
        await check_connection(url, timeout_seconds=timeout_seconds)
    message = str(refused.value)
    assert PASSWORD not in message
    assert "\n" not in message
    return message


async def test_check_connection_existing_database_returns() -> None:
    await check_connection(url_to(SERVER.database or "postgres"))


async def test_check_connection_missing_database_says_how_to_create_it() -> None:
    name = f"jqt_{os.getpid()}_never_created"
    flags = [
        *(["-h", SERVER.host] if SERVER.host else []),
        *(["-p", str(SERVER.port)] if SERVER.port else []),
        *(["-U", SERVER.username] if SERVER.username else []),
    ]
    createdb = " ".join(["createdb", *flags, name])

    assert await refusal(url_to(name)) == (
        f'database "{name}" does not exist on {TARGET}: create it with {createdb}, or fix the '
        "name in JOBQUEUE_DATABASE_URL"
    )


async def test_check_connection_unknown_role_names_it() -> None:
    assert await refusal(url_to("postgres", username="jqt_no_such_role")) == (
        f'PostgreSQL at {TARGET} refused the connection: role "jqt_no_such_role" does not '
        "exist: check the user in JOBQUEUE_DATABASE_URL and the server's pg_hba.conf"
    )


async def test_check_connection_database_not_accepting_connections_says_so() -> None:
    assert await refusal(url_to("template0")) == (
        f'PostgreSQL at {TARGET} refused the connection: database "template0" is not currently '
        "accepting connections"
    )


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_check_connection_nothing_listening_asks_whether_postgres_runs() -> None:
    port = unused_port()
    assert await refusal(url_to("jobs", host="127.0.0.1", port=port)) == (
        f"could not connect to 127.0.0.1:{port}: connection refused: is PostgreSQL running and "
        "listening on that port? (JOBQUEUE_DATABASE_URL)"
    )


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts TCP connections and never answers (the kernel completes the
    handshake; nobody reads): a PostgreSQL that hangs, or a firewall that swallows packets."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


async def test_check_connection_server_that_never_answers_times_out_saying_so(
    silent_server: int,
) -> None:
    url = url_to("jobs", host="127.0.0.1", port=silent_server)
    assert await refusal(url, timeout_seconds=0.3) == (
        f"could not connect to 127.0.0.1:{silent_server} within 0.3 s: is the host reachable "
        "and PostgreSQL listening on that port? (JOBQUEUE_DATABASE_URL)"
    )


def test_explain_unresolvable_host_names_it() -> None:
    error = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    url = f"postgresql://u:{PASSWORD}@db.invalid:5432/jobs"
    assert explain_connect_error(error, url) == (
        "could not resolve the database host 'db.invalid' (Name or service not known): check "
        "the host in JOBQUEUE_DATABASE_URL"
    )


def test_explain_hides_the_password_in_words_it_quotes() -> None:
    error = OSError(f"something echoed {PASSWORD} back")
    message = explain_connect_error(error, f"postgresql://u:{PASSWORD}@h:6000/jobs")
    assert message == (
        "could not connect to h:6000: something echoed *** back: is PostgreSQL running there? "
        "(JOBQUEUE_DATABASE_URL)"
    )


def test_explain_error_of_a_statement_is_none() -> None:
    error = asyncpg.InsufficientPrivilegeError("permission denied for schema public")
    assert explain_connect_error(error, f"postgresql://u:{PASSWORD}@h/jobs") is None
