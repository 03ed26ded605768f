"""`db.Prepared`: a hot statement compiled once per dialect and run on the driver's cursor
gives the rows SQLAlchemy's own execution gives (the same Python types, after the same
bind and result processing), raises SQLAlchemy's exceptions, and gives up a connection the
database dropped; on both databases."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import bindparam, event, insert, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError, StatementError

from exchange.agreements.models import Agreement, AgreementParty, Organisation
from exchange.auth.models import Client
from exchange.db import Database, Prepared

_CLIENTS = (
    select(
        Client.client_id,
        Client.scopes,
        Client.jwks,
        Client.enabled,
        Client.created,
        Organisation.id,
        Organisation.break_glass,
        (Organisation.role == bindparam("role")).label("matches"),
    )
    .join(Organisation, Organisation.id == Client.organisation_id)
    .where(Organisation.role != bindparam("not_role"))
    .order_by(Client.client_id)
)


def test_rows_are_what_sqlalchemy_gives(world: None, db: Database) -> None:
    parameters = {"role": "la", "not_role": "icb"}
    prepared = Prepared(_CLIENTS)
    with db.transaction() as session:
        connection = session.connection()
        expected = [tuple(row) for row in connection.execute(_CLIENTS, parameters)]
        found = prepared.rows(connection, parameters)
    assert found == expected and len(found) >= 2
    _, scopes, jwks, enabled, created, organisation_id, break_glass, matches = found[0]
    assert isinstance(scopes, list) and isinstance(jwks, dict)
    assert isinstance(organisation_id, uuid.UUID)
    assert created.tzinfo is not None and created.utcoffset().total_seconds() == 0
    assert (type(enabled), type(break_glass), type(matches)) == (bool, bool, bool)
    assert {row[7] for row in found} == {True, False}


def test_bound_values_are_processed_as_sqlalchemy_would(world: None, db: Database) -> None:
    """A UUID, a date and an aware datetime bound through the column types (SQLite keeps
    the UUID as hex and the time as naive UTC text; a wrong binding would find nothing)."""
    with db.transaction() as session:
        organisation = session.scalars(select(Organisation).order_by(Organisation.ods)).first()
        assert organisation is not None
        statement = Prepared(
            select(Organisation.ods).where(
                Organisation.id == bindparam("id", type_=Organisation.id.type),
                Organisation.created <= bindparam("at", type_=Organisation.created.type),
            )
        )
        connection = session.connection()
        at = datetime(2100, 1, 1, tzinfo=UTC)
        assert statement.first(connection, {"id": organisation.id, "at": at}) == (organisation.ods,)
        assert statement.first(connection, {"id": uuid.uuid4(), "at": at}) is None
        on = Prepared(select(Agreement.agreement_id).where(Agreement.start <= bindparam("on")))
        assert on.rows(connection, {"on": date(1900, 1, 1)}) == []


def test_a_constraint_violation_is_sqlalchemys_integrity_error(world: None, db: Database) -> None:
    with db.transaction() as session:
        party = session.scalars(select(AgreementParty)).first()
        assert party is not None
        duplicate = Prepared(
            insert(AgreementParty).values(
                agreement_id=bindparam("agreement_id", type_=AgreementParty.agreement_id.type),
                organisation_id=bindparam(
                    "organisation_id", type_=AgreementParty.organisation_id.type
                ),
                position=bindparam("position"),
            )
        )
        with pytest.raises(IntegrityError):
            duplicate.rows(
                session.connection(),
                {
                    "agreement_id": party.agreement_id,
                    "organisation_id": party.organisation_id,
                    "position": party.position,
                },
            )
        session.rollback()


def test_a_statement_rendered_per_execution_is_refused(db: Database) -> None:
    statement = Prepared(select(Organisation.id).where(Organisation.role.in_(["la", "icb"])))
    with db.transaction() as session, pytest.raises(ValueError, match="IN lists"):
        statement.rows(session.connection(), {})


def test_a_dropped_connection_is_invalidated(backend: str, fresh_database_url: str) -> None:
    """The database ends the session under the statement: SQLAlchemy's DBAPIError, marked
    invalidated, and the pool hands out a working connection next."""
    if backend != "postgresql":
        pytest.skip("an embedded SQLite has no server to drop the connection")
    database = Database(fresh_database_url)
    ping = Prepared(select(Organisation.id).where(Organisation.ods == bindparam("ods")))
    try:
        with database.lookup() as connection:
            pid = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
            with database.engine.connect() as killer:
                killer.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            with pytest.raises(DBAPIError) as raised:
                ping.rows(connection, {"ods": "LA01"})
            assert raised.value.connection_invalidated
        with database.lookup() as connection:
            assert ping.rows(connection, {"ods": "LA01"}) == []
    finally:
        database.dispose()


def test_the_engines_cursor_events_see_the_statement(world: None, db: Database) -> None:
    seen: list[str] = []

    def before(_connection: object, _cursor: object, sql: str, *_: object) -> None:
        seen.append(sql)

    prepared = Prepared(_CLIENTS)
    event.listen(db.engine, "before_cursor_execute", before)
    try:
        with db.transaction() as session:
            prepared.rows(session.connection(), {"role": "la", "not_role": "icb"})
    finally:
        event.remove(db.engine, "before_cursor_execute", before)
    assert any(sql.lstrip().startswith("SELECT client.client_id") for sql in seen)


def test_a_parameter_name_that_needs_escaping_is_refused(db: Database) -> None:
    statement = Prepared(select(Organisation.id).where(Organisation.ods == bindparam("ods code")))
    with db.transaction() as session, pytest.raises(ValueError, match="escaping"):
        statement.rows(session.connection(), {"ods code": "LA01"})


def test_a_bad_value_is_sqlalchemys_statement_error(world: None, db: Database) -> None:
    """A value the column type refuses (a naive time) is raised as SQLAlchemy raises it,
    which the API maps like any other database error, not as a bare ValueError."""
    statement = Prepared(
        select(Organisation.id).where(
            Organisation.created <= bindparam("at", type_=Organisation.created.type)
        )
    )
    with db.transaction() as session, pytest.raises(StatementError):
        statement.rows(session.connection(), {"at": datetime(2026, 1, 1)})


def test_a_write_on_a_connection_with_no_transaction_begins_one(
    fresh_database_url: str,
) -> None:
    """Run on a connection SQLAlchemy has not begun, the statement is in a transaction
    SQLAlchemy knows: a rollback undoes it and a commit keeps it (without that, SQLite
    commits it by itself and PostgreSQL loses it unseen)."""
    database = Database(fresh_database_url)
    now = datetime(2026, 11, 30, tzinfo=UTC)
    rename = Prepared(
        update(Organisation)
        .where(Organisation.ods == bindparam("ods"))
        .values(name=bindparam("name"))
    )

    def name() -> str | None:
        with database.engine.connect() as connection:
            query = select(Organisation.name).where(Organisation.ods == "ZZ01")
            return connection.execute(query).scalar_one()

    try:
        with database.transaction() as session:
            session.add(
                Organisation(ods="ZZ01", name="Before", role="la", created=now, updated=now)
            )
        for finish, expected in (("rollback", "Before"), ("commit", "After")):
            with database.engine.connect() as connection:
                rename.rows(connection, {"ods": "ZZ01", "name": "After"})
                assert connection.in_transaction()
                getattr(connection, finish)()
            assert name() == expected
    finally:
        database.dispose()


def test_many_inserts_every_row_and_fails_as_sqlalchemy_would(world: None, db: Database) -> None:
    """`many` runs one executemany with every set of parameters bound through the column
    types; a duplicate among them is SQLAlchemy's IntegrityError and nothing of it stays."""
    statement = Prepared(
        insert(AgreementParty).values(
            agreement_id=bindparam("agreement_id", type_=AgreementParty.agreement_id.type),
            organisation_id=bindparam("organisation_id", type_=AgreementParty.organisation_id.type),
            position=bindparam("position"),
        )
    )
    with db.transaction() as session:
        agreement = session.scalars(select(Agreement)).first()
        organisations = session.scalars(select(Organisation.id)).all()
        assert agreement is not None and len(organisations) >= 3
        session.execute(
            AgreementParty.__table__.delete().where(  # type: ignore[attr-defined]
                AgreementParty.agreement_id == agreement.id
            )
        )
        rows = [
            {"agreement_id": agreement.id, "organisation_id": org, "position": index}
            for index, org in enumerate(organisations[:2])
        ]
        connection = session.connection()
        statement.many(connection, rows)
        statement.many(connection, [])  # nothing to insert: no statement at all
        stored = session.execute(
            select(AgreementParty.organisation_id, AgreementParty.position)
            .where(AgreementParty.agreement_id == agreement.id)
            .order_by(AgreementParty.position)
        ).all()
        assert [tuple(row) for row in stored] == [
            (row["organisation_id"], row["position"]) for row in rows
        ]
        savepoint = connection.begin_nested()
        with pytest.raises(IntegrityError):
            statement.many(
                connection,
                [{**rows[0], "organisation_id": organisations[2], "position": 9}, rows[0]],
            )
        savepoint.rollback()
        assert (
            session.scalar(select(AgreementParty.position).where(AgreementParty.position == 9))
            is None
        )
        session.rollback()


def test_values_in_the_statement_are_bound_with_those_given(world: None, db: Database) -> None:
    """A literal compared in the statement (an anonymous parameter with its value), a
    parameter with a default that a caller may override, and one computed when run (bound
    by SQLAlchemy's own `construct_params`) each give what SQLAlchemy's execution gives."""
    statement = select(Organisation.ods).where(
        Organisation.role == "la",
        Organisation.ods != bindparam("not_ods", value="NONE"),
        Organisation.ods != bindparam("computed", callable_=lambda: "NONE2"),
    )
    with db.transaction() as session:
        connection = session.connection()
        for parameters in ({}, {"not_ods": "LA01"}):
            expected = [tuple(row) for row in connection.execute(statement, parameters)]
            assert Prepared(statement).rows(connection, parameters) == expected
        simple = select(Organisation.ods).where(
            Organisation.role == "la", Organisation.ods != bindparam("not_ods", value="NONE")
        )
        everything = [tuple(row) for row in connection.execute(simple)]
        assert len(everything) >= 1
        assert Prepared(simple).rows(connection, {}) == everything
        assert Prepared(simple).rows(connection, {"not_ods": everything[0][0]}) == everything[1:]


def test_a_missing_parameter_is_sqlalchemys_statement_error(db: Database) -> None:
    statement = Prepared(select(Organisation.id).where(Organisation.ods == bindparam("ods")))
    with db.transaction() as session, pytest.raises(StatementError, match="'ods'"):
        statement.rows(session.connection(), {"other": "LA01"})
