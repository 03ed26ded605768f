"""`db.write_together`: a use case's rows written together, on PostgreSQL as one statement
(each write but the last in a WITH clause), elsewhere each in turn; all or none, foreign
keys between them checked, on both databases."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.exc import IntegrityError

from exchange.agreements.models import Organisation
from exchange.auth.models import Client
from exchange.db import Database, Write, json_text, row_insert, write_together

_NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
_ORGANISATION = row_insert(Organisation)
_CLIENT = row_insert(Client)


def _organisation(ods: str, organisation_id: uuid.UUID | None = None) -> Write:
    return Write(
        _ORGANISATION,
        {
            "id": organisation_id or uuid.uuid4(),
            "ods": ods,
            "name": f"Organisation {ods}",
            "role": "provider",
            "commissioner_ods": None,
            "break_glass": False,
            "version": 1,
            "created": _NOW,
            "updated": _NOW,
        },
    )


def _client(client_id: str, organisation_id: uuid.UUID) -> Write:
    return Write(
        _CLIENT,
        {
            "client_id": client_id,
            "organisation_id": organisation_id,
            "scopes": ["system/DocumentReference.c"],
            "jwks": {"keys": [{"kty": "EC", "crv": "P-256", "x": "é", "y": "y"}]},
            "jwks_uri": None,
            "enabled": True,
            "created": _NOW,
            "updated": _NOW,
        },
    )


@contextmanager
def _inserts(db: Database) -> Iterator[list[str]]:
    """The INSERTs the engine sends while the block runs (the listener is removed after:
    the engine is the session's, shared by every test)."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        if "INSERT" in sql:
            seen.append(sql)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", record)


def test_rows_that_refer_to_each_other_are_written_together(db: Database) -> None:
    """The client refers to the organisation written with it (its foreign key is checked
    when the statement ends); both rows are there, the JSON columns as given."""
    organisation_id = uuid.uuid4()
    with _inserts(db) as seen, db.write_connection() as connection:
        write_together(
            connection,
            (_organisation("WT001", organisation_id), _client("wt-client", organisation_id)),
        )
    assert len(seen) == (1 if db.dialect == "postgresql" else 2)
    with db.transaction() as session:
        client = session.get(Client, "wt-client")
        assert client is not None and client.organisation.ods == "WT001"
        assert client.scopes == ["system/DocumentReference.c"]
        assert client.jwks == {"keys": [{"kty": "EC", "crv": "P-256", "x": "é", "y": "y"}]}


def test_a_refused_write_leaves_none_of_them(db: Database) -> None:
    """The second organisation repeats the first's ODS code: nothing is written."""
    organisation_id = uuid.uuid4()
    with pytest.raises(IntegrityError), db.write_connection() as connection:
        write_together(
            connection,
            (
                _organisation("WT002", organisation_id),
                _client("wt-refused", organisation_id),
                _organisation("WT002"),
            ),
        )
    with db.transaction() as session:
        assert session.get(Client, "wt-refused") is None
        assert session.scalar(select(Organisation).where(Organisation.ods == "WT002")) is None


def test_a_foreign_key_to_no_row_refuses_them_all(db: Database) -> None:
    with pytest.raises(IntegrityError), db.write_connection() as connection:
        write_together(connection, (_organisation("WT003"), _client("wt-orphan", uuid.uuid4())))
    with db.transaction() as session:
        assert session.scalar(select(Organisation).where(Organisation.ods == "WT003")) is None


def test_a_write_that_runs_more_than_its_statement_alone_does_so_off_postgresql(
    db: Database,
) -> None:
    """`Write.alone` is what runs where the writes are not one statement; on PostgreSQL
    the statement is."""
    ran: list[str] = []
    organisation = _organisation("WT004")
    special = Write(
        organisation.statement,
        organisation.values,
        alone=lambda connection: (ran.append("alone"), organisation.run(connection)),
    )
    with db.write_connection() as connection:
        write_together(connection, (_organisation("WT005"), special))
    assert ran == ([] if db.dialect == "postgresql" else ["alone"])
    with db.transaction() as session:
        found = session.scalars(
            select(Organisation.ods).where(Organisation.ods.in_(["WT004", "WT005"]))
        )
        assert sorted(found) == ["WT004", "WT005"]


def test_json_text_is_json_and_keeps_what_orjson_refuses() -> None:
    assert json_text({"a": [1, 2.5, "é", None, True]}) == '{"a":[1,2.5,"é",null,true]}'
    assert json_text({"big": 2**70}) == '{"big": 1180591620717411303424}'
    with pytest.raises(TypeError):
        json_text({"when": _NOW})


def test_parameters_are_renamed_apart(db: Database) -> None:
    """Two writes of the same table, whose parameters share every name."""
    with db.write_connection() as connection:
        write_together(connection, (_organisation("WT006"), _organisation("WT007")))
    with db.transaction() as session:
        found = session.scalars(
            select(Organisation.ods).where(Organisation.ods.in_(["WT006", "WT007"]))
        )
        assert sorted(found) == ["WT006", "WT007"]
