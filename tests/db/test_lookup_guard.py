"""A look-up connection (`Database.lookup`, `Database.read_session`) never writes: on
PostgreSQL it runs in autocommit, so a write would commit at once outside any use case's
transaction; on SQLite it is a read transaction rolled back at the end, so a write would
be lost without a word. Core statements and `Prepared` ones are refused before they reach
the driver, as the ORM's flush already was; on real commits, both databases."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import event, func, insert, select

from exchange.agreements.models import Organisation
from exchange.audit.models import AuditRecord
from exchange.audit.service import audited_read, record
from exchange.db import Database, core_connection, row_insert, values_of
from tests.factories import audit_entry

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


def test_a_requests_lookups_share_one_connection_and_stay_guarded(
    database: Database, backend: str
) -> None:
    """Within `holding_lookups` (one API request), PostgreSQL's look-ups and read sessions
    share one pooled connection, given back at the end; the audited read's append on it
    leaves it refusing writes again. On SQLite each look-up stays its own read transaction."""
    checkouts: list[object] = []
    event.listen(database.engine.pool, "checkout", lambda *args: checkouts.append(args))
    with database.holding_lookups():
        with database.lookup() as first:
            token_connection = first.connection.dbapi_connection
        with audited_read(database) as session:
            read_connection = core_connection(session).connection.dbapi_connection
            record(session, audit_entry(1))
        with (
            database.lookup() as again,
            pytest.raises(RuntimeError, match="does not write"),
        ):
            again.execute(insert(Organisation).values(_organisation("GUARD4")))
        with (
            database.read_session() as session,
            pytest.raises(RuntimeError, match="does not write"),
        ):
            row_insert(Organisation).rows(core_connection(session), _organisation("GUARD5"))
    shared = backend == "postgresql"
    assert token_connection is read_connection or not shared
    # The audited read's append is a write connection of its own on SQLite.
    assert len(checkouts) == (1 if shared else 5)
    assert database.engine.pool.checkedout() == 0
    assert _stored(database) == 0
    with database.transaction() as session:
        assert session.scalar(select(func.count()).select_from(AuditRecord)) == 1


def test_a_request_holds_one_connection_at_a_time(database: Database, backend: str) -> None:
    """A transaction begun in a request whose look-up connection is idle has it given back
    first, so a request holds one connection at a time, as without holding (the pool is
    sized for that); one in use by a look-up is kept for it."""
    pool = database.engine.pool
    with database.holding_lookups():
        with database.lookup() as connection:
            connection.execute(select(func.count()).select_from(Organisation))
        with database.transaction() as session:
            session.execute(select(func.count()).select_from(Organisation))
            assert pool.checkedout() == 1
        with database.read_session() as session:
            session.execute(select(func.count()).select_from(Organisation))
            with database.transaction() as writing:
                writing.execute(select(func.count()).select_from(Organisation))
                assert pool.checkedout() == 2
            assert session.execute(select(func.count()).select_from(Organisation)).scalar() == 0
        assert pool.checkedout() == (1 if backend == "postgresql" else 0)
    assert pool.checkedout() == 0
