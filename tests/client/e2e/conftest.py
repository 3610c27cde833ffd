"""The end-to-end fixtures (real ``jobqueue serve`` processes) for the client's tests."""

from tests.e2e.conftest import (
    pytest_runtest_makereport,
    record_file,
    start_server,
    workdir,
)

__all__ = ["pytest_runtest_makereport", "record_file", "start_server", "workdir"]
