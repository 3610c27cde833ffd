"""Only ``leases/`` writes a job's lease columns (``worker_id``, ``lease_expires_at``) or moves
a job into or out of ``in_progress``: a scan of every other module's SQL and Core updates.
(The import contract in pyproject.toml keeps everyone else from the lease statements.)"""

from __future__ import annotations

import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "jobqueue"
LEASES = SRC / "leases"

# A hand-written UPDATE of jobs, up to the end of its SET list.
_SQL_UPDATE = re.compile(
    r"UPDATE\s+jobs\b.*?\bSET\b(?P<set>.*?)(?:\bFROM\b|\bWHERE\b)", re.S | re.I
)
# A Core update of the jobs table, up to the end of its .values(...).
_CORE_UPDATE = re.compile(r"update\(jobs\)(?P<chain>.*?\.values\((?P<values>.*?)\)\s*\.)", re.S)
_LEASE_COLUMN = re.compile(r"\b(worker_id|lease_expires_at)\b")
_IN_PROGRESS = re.compile(r"IN_PROGRESS|'in_progress'")


def _modules() -> list[Path]:
    return [path for path in SRC.rglob("*.py") if LEASES not in path.parents]


def test_no_module_outside_leases_writes_lease_columns_in_sql() -> None:
    offenders: list[str] = []
    for path in _modules():
        text = path.read_text()
        for match in _SQL_UPDATE.finditer(text):
            if _LEASE_COLUMN.search(match["set"]) or _IN_PROGRESS.search(match["set"]):
                offenders.append(f"{path.relative_to(SRC)}: {match.group(0)[:80]!r}")
        for match in _CORE_UPDATE.finditer(text):
            values = match["values"]
            if _LEASE_COLUMN.search(values) or _IN_PROGRESS.search(values):
                offenders.append(f"{path.relative_to(SRC)}: {values[:80]!r}")
    assert offenders == []


def test_the_scan_finds_the_lease_writes_of_leases() -> None:
    # The scan must see what it looks for: leases/ itself writes both columns.
    text = (LEASES / "_statements.py").read_text()
    sets = [m["set"] for m in _SQL_UPDATE.finditer(text)]
    assert any("lease_expires_at" in s for s in sets)
    assert any("worker_id" in s for s in sets)
    core = (SRC / "db" / "queries.py").read_text()
    assert len(list(_CORE_UPDATE.finditer(core))) == 3  # cancel_todo, request_cancel, retry_job
