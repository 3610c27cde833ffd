"""``python -m jobqueue``: the same CLI as the ``jobqueue`` command."""

from jobqueue.cli import app

app(prog_name="jobqueue")
