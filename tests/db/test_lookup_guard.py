"""A look-up connection (`Database.lookup`, `Database.read_session`) never writes: on
PostgreSQL it runs in autocommit, so a write would commit at once outside any use case's
transaction; on SQLite it is a read transaction rolled back at the end, so a write would
be lost without a word. Core statements and `Prepared` ones are refused before they reach
the driver, as the ORM's flush already was; on real commits, both databases."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, insert, select

from exchange.agreements.models import Organisation
from exchange.db import Database, core_connection, row_insert, values_of

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)


def _organisation(ods: str) -> dict[str, object]:
    return values_of(
        Organisation(
            id=uuid.uuid4(),
            ods=ods,
            name=f"Look-up {ods}",
            role="provider",
            commissioner_ods=None,
            break_glass=False,
            version=1,
            created=NOW,
            updated=NOW,
        )
    )


@pytest.fixture
def database(fresh_database_url: str) -> Iterator[Database]:
    database = Database(fresh_database_url)
    yield database
    database.dispose()


def _stored(database: Database) -> int:
    with database.transaction() as session:
        return int(
            session.scalar(select(func.count()).where(Organisation.ods.startswith("GUARD"))) or 0
        )


def test_a_core_write_on_a_lookup_is_refused(database: Database) -> None:
    with database.lookup() as connection, pytest.raises(RuntimeError, match="does not write"):
        connection.execute(insert(Organisation).values(_organisation("GUARD1")))
    assert _stored(database) == 0


def test_a_prepared_write_in_a_read_session_is_refused(database: Database) -> None:
    with database.read_session() as session, pytest.raises(RuntimeError, match="does not write"):
        row_insert(Organisation).rows(core_connection(session), _organisation("GUARD2"))
    assert _stored(database) == 0


def test_reads_and_write_transactions_are_untouched(database: Database) -> None:
    with database.lookup() as connection:
        assert connection.execute(select(func.count(Organisation.id))).scalar_one() >= 0
    with database.transaction() as session:
        row_insert(Organisation).rows(core_connection(session), _organisation("GUARD3"))
    assert _stored(database) == 1
