"""Database access: engine, tables (the alembic target), repository (every SQL statement)."""
