"""`audited_read`, on a real database of each backend: the reads hold no write lock (on
SQLite, not the writer lock; on PostgreSQL, no transaction at all), so writers go on
meanwhile; the records are appended and committed when the block ends (before a front
door sends anything); a write inside fails before anything is written; a read that raises
appends nothing. Over HTTP, every document read, search and download runs through it
(tests/api, on both databases)."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from exchange.audit.events import Entity
from exchange.audit.models import AuditEntityRef, AuditRecord
from exchange.audit.service import audited_read, record
from exchange.db import Database
from exchange.patients.models import Patient
from tests.factories import audit_entry


def _records(database: Database) -> int:
    with database.read_session() as session:
        return session.scalar(select(func.count()).select_from(AuditRecord)) or 0


def test_writers_go_on_while_it_reads_and_its_records_commit_at_the_end(
    database: Database,
) -> None:
    written = threading.Event()

    def write() -> None:
        with database.transaction() as session:
            record(session, audit_entry(1))
        written.set()

    with audited_read(database) as session:
        session.execute(text("SELECT count(*) FROM patient"))
        recorded = record(
            session, audit_entry(2, entities=(Entity("DocumentReference/read-here"),))
        )
        writer = threading.Thread(target=write)
        writer.start()
        assert written.wait(10), "a writer waited for the read"
        writer.join()
        assert _records(database) == 1  # only the other transaction's, so far
    assert _records(database) == 2
    with database.read_session() as session:
        payloads = session.scalars(select(AuditRecord.payload)).all()
        references = session.scalars(select(AuditEntityRef.reference)).all()
    assert recorded.payload in payloads
    assert references == ["DocumentReference/read-here"]


def test_a_write_inside_fails_before_anything_is_written(database: Database) -> None:
    def try_to_write(session: Session) -> None:
        record(session, audit_entry(3))
        session.add(Patient(nhs_number="9434765919", birth_date=None))
        session.flush()

    with pytest.raises(RuntimeError, match="does not write"), audited_read(database) as session:
        try_to_write(session)
    assert _records(database) == 0
    with database.read_session() as session:
        assert session.scalar(select(func.count()).select_from(Patient)) == 0


def test_a_read_that_raises_appends_nothing(database: Database) -> None:
    def refuse(session: Session) -> None:
        record(session, audit_entry(4))
        raise LookupError("refused")

    with pytest.raises(LookupError), audited_read(database) as session:
        refuse(session)
    assert _records(database) == 0
