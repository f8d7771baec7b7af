"""PostgreSQL access: the connection pool and the migration runner."""

from engine.db.pool import create_pool
from engine.db.migrate import apply_migrations

__all__ = ["create_pool", "apply_migrations"]
