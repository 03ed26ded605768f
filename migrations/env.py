"""Alembic environment: runs the migrations online against the configured database.

On PostgreSQL every migration run takes an advisory lock (so replicas started together
migrate once) and sets a lock timeout (so a migration never queues behind live traffic
for long, blocking it in turn).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from exchange.db import make_engine
from exchange.schema import metadata
from exchange.settings import Settings

config = context.config
_LOCK = text("SELECT pg_advisory_lock(hashtext(current_schema() || '/' || :name))")
_UNLOCK = text("SELECT pg_advisory_unlock(hashtext(current_schema() || '/' || :name))")
database_url = config.attributes.get("database_url") or Settings.from_env().database_url


def run_migrations_online() -> None:
    """Run every pending migration in one transaction."""
    engine = make_engine(database_url)
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SET lock_timeout = '10s'"))
            connection.execute(_LOCK, {"name": "migrations"})
            connection.commit()
        try:
            context.configure(
                connection=connection,
                target_metadata=metadata,
                render_as_batch=connection.dialect.name == "sqlite",
                compare_type=True,
            )
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
        finally:
            if connection.dialect.name == "postgresql":
                connection.execute(_UNLOCK, {"name": "migrations"})
                connection.commit()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported; run `exchange init`")
run_migrations_online()
