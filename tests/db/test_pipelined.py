"""`db.pipelined`: on PostgreSQL the row-less `Prepared` statements of a block go to the
server without waiting for each answer (psycopg's pipeline mode); every one is applied, a
failure among them is SQLAlchemy's exception as the block ends and the transaction keeps
nothing; on SQLite the same block behaves the same, unpipelined. On real commits, both
databases."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from exchange.agreements.models import Organisation
from exchange.db import Database, Prepared, core_connection, pipelined, row_insert, values_of

_INSERT: Prepared = row_insert(Organisation)
NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)


def _organisation(ods: str) -> dict[str, object]:
    return values_of(
        Organisation(
            id=uuid.uuid4(),
            ods=ods,
            name=f"Pipelined {ods}",
            role="provider",
            commissioner_ods=None,
            break_glass=False,
            version=1,
            created=NOW,
            updated=NOW,
        )
    )


def _count(database: Database, prefix: str) -> int:
    with database.transaction() as session:
        return int(
            session.scalar(select(func.count()).where(Organisation.ods.startswith(prefix))) or 0
        )


def test_every_statement_of_the_block_is_applied(backend: str, fresh_database_url: str) -> None:
    database = Database(fresh_database_url)
    try:
        with database.transaction() as session, pipelined(session):
            connection = core_connection(session)
            if backend == "postgresql":  # really in pipeline mode, not one by one
                assert connection.connection.driver_connection.pgconn.pipeline_status
            for index in range(3):
                _INSERT.rows(connection, _organisation(f"PIPE{index}"))
        assert _count(database, "PIPE") == 3
    finally:
        database.dispose()


def test_a_failure_in_the_block_is_sqlalchemys_and_keeps_nothing(
    fresh_database_url: str,
) -> None:
    database = Database(fresh_database_url)
    try:
        with database.transaction() as session:
            _INSERT.rows(core_connection(session), _organisation("TAKEN"))

        def three_with_a_duplicate() -> None:
            with database.transaction() as session, pipelined(session):
                connection = core_connection(session)
                _INSERT.rows(connection, _organisation("FRESH1"))
                _INSERT.rows(connection, _organisation("TAKEN"))  # a duplicate ODS code
                _INSERT.rows(connection, _organisation("FRESH2"))

        with pytest.raises(IntegrityError):
            three_with_a_duplicate()
        assert _count(database, "FRESH") == 0
        assert _count(database, "TAKEN") == 1
        with database.transaction() as session, pipelined(session):  # the pool is fine
            _INSERT.rows(core_connection(session), _organisation("FRESH3"))
        assert _count(database, "FRESH") == 1
    finally:
        database.dispose()
