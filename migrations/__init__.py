"""The database migrations (Alembic), installed as `exchange.migrations` (see pyproject.toml)."""
