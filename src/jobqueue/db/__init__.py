"""Database access: the engine and its connection helpers, ``tables`` (the schema: alembic's
target and the source of every column list), ``queries`` (enqueue, reads, admin, registry) and
``dashboard_queries``. The lease statements live in ``jobqueue.leases``."""
