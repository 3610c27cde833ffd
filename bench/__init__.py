"""The benchmark: jobqueue vs pgqueuer vs procrastinate on the local PostgreSQL (``make bench``).

``python -m bench`` runs it; see ``bench/README.md`` and ``docs/performance.md``.
"""
