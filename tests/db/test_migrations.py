"""Migrations: upgrade from empty and downgrade to base work on both databases, the head
file names the newest revision, and the models match what the migrations build."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from exchange import migrate
from exchange.db import make_engine
from exchange.schema import metadata
from tests.conftest import DatabaseFactory

ROOT = Path(__file__).resolve().parents[2]


def test_head_file_names_the_newest_revision() -> None:
    assert (ROOT / "migrations" / ".current-alembic-head").read_text().strip() == migrate.head_revision()


def test_migration_files_are_numbered_in_order() -> None:
    names = sorted(p.name for p in (ROOT / "migrations" / "versions").glob("*.py"))
    assert names and all(name[:4].isdigit() and name[4] == "_" for name in names)
    assert [int(name[:4]) for name in names] == list(range(1, len(names) + 1))


def test_upgrade_from_empty_and_downgrade_to_base(backend: str, database_factory: DatabaseFactory) -> None:
    url = database_factory.create(backend, migrated=False)
    migrate.upgrade(url)
    assert migrate.current_revision(url) == migrate.head_revision()
    engine = make_engine(url)
    tables = set(inspect(engine).get_table_names())
    assert {"organisation", "client", "agreement", "console_user", "audit_event", "audit_checkpoint"} <= tables
    migrate.upgrade(url)  # idempotent
    migrate.downgrade(url, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    migrate.upgrade(url)
    assert migrate.current_revision(url) == migrate.head_revision()
    engine.dispose()


def test_models_match_migrations(backend: str, database_factory: DatabaseFactory) -> None:
    url = database_factory.create(backend)
    engine = make_engine(url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, metadata)
    engine.dispose()
    assert differences == []
