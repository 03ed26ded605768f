"""`record()`: the one way anything is written to the audit trail.

Every feature calls it inside the transaction of the change it audits, so the change and
its record commit together or not at all. For reads, the caller commits the record before
sending any personal data; if that commit fails the request fails closed (`audit.md`).
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, cast

from sqlalchemy import String, Table, bindparam, func, insert, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from exchange.audit.chain import canonical_json
from exchange.audit.events import AuditEntry, to_fhir
from exchange.audit.models import AuditEntityRef, AuditRecord
from exchange.clock import Clock, SystemClock
from exchange.db import (
    Database,
    Prepared,
    Write,
    appending,
    core_connection,
    insert_of,
    row_insert,
)

log = logging.getLogger(__name__)

_SYSTEM_CLOCK = SystemClock()


@dataclass(frozen=True, slots=True)
class Recorded:
    """An audit record as inserted (unsealed): its event id and canonical payload."""

    event_id: uuid.UUID
    payload: str


_EVENTS: Final = cast(Table, AuditRecord.__table__)
_ENTITIES: Final = cast(Table, AuditEntityRef.__table__)
#: Built once, in Core rather than the ORM's unit of work, which cost a sixth of a
#: document read's time (bench/profiles/api-load.md). On SQLite: the record, then its
#: entity references.
#: The chain's columns are left empty (NULL) for the sealer, and not named: a document's
#: create writes its record in one statement with four other rows (`db.write_together`),
#: whose parameters must stay within what psycopg caches the parsing of.
_new_event = insert_of(AuditRecord, omit=("id", "sequence", "previous_hash", "hash")).returning(
    _EVENTS.c.id
)
_INSERT_EVENT: Final = Prepared(_new_event)
_INSERT_ENTITY: Final = row_insert(AuditEntityRef)
#: On PostgreSQL one statement (one round trip) inserts both: the record in a WITH
#: clause, its entity references from an array.
_both = _new_event.cte("new_event")
_INSERT_BOTH: Final = Prepared(
    insert(_ENTITIES).from_select(
        ["audit_id", "reference"],
        select(_both.c.id, func.unnest(bindparam("entity_references", type_=ARRAY(String)))),
    )
)


def record(
    session: Session, entry: AuditEntry, clock: Clock = _SYSTEM_CLOCK, *, at: datetime | None = None
) -> Recorded:
    """Insert an (unsealed) audit record for `entry` in the session's transaction, recorded
    `at` (a use case's `now`) or by `clock`."""
    values, references, recorded = _record_values(entry, at or clock.now())
    deferred = session.info.get(_DEFERRED)
    if deferred is not None:
        deferred.append((values, references))
    else:
        _insert(core_connection(session), values, references)
    return recorded


def record_write(entry: AuditEntry, at: datetime) -> tuple[Write, Recorded]:
    """`record()` as one of a use case's writes (`db.write_together`), and the record."""
    values, references, recorded = _record_values(entry, at)
    write = Write(
        _INSERT_BOTH,
        {**values, "entity_references": references},
        alone=lambda connection: _insert(connection, values, references),
    )
    return write, recorded


def _record_values(
    entry: AuditEntry, recorded: datetime
) -> tuple[dict[str, Any], list[str], Recorded]:
    """An audit record's row, its entity references and what `record()` returns."""
    event_id = uuid.uuid4()
    actor = entry.actor
    payload = canonical_json(to_fhir(entry, event_id, recorded))
    values = {
        "event_id": event_id,
        "recorded": recorded,
        "payload": payload,
        "kind": entry.kind.value,
        "action": entry.action.value,
        "outcome": entry.outcome.value,
        "agent_client_id": actor.client_id,
        "agent_user": actor.user if actor.client_id is None else None,
        "agent_org": actor.organisation,
        "custodian_org": entry.custodian,
        "patient_id": entry.patient_id,
        "purpose": actor.purpose,
        "break_glass": actor.break_glass,
        "request_id": entry.request_id,
        "review_reason": entry.review_reason.value if entry.review_reason is not None else None,
    }
    references = list(dict.fromkeys(e.reference[:160] for e in entry.entities))
    return values, references, Recorded(event_id, payload)


def _insert(connection: Connection, values: dict[str, Any], references: list[str]) -> None:
    if connection.dialect.name == "postgresql":
        _INSERT_BOTH.rows(connection, {**values, "entity_references": references})
        return
    (audit_id,) = _INSERT_EVENT.rows(connection, values)[0]
    _INSERT_ENTITY.many(
        connection, [{"audit_id": audit_id, "reference": reference} for reference in references]
    )


#: Where an audited read (`audited_read`) keeps its records until it appends them.
_DEFERRED: Final = "exchange.audit_deferred"


@contextmanager
def audited_read(database: Database) -> Iterator[Session]:
    """A use case that only reads, and audits what it read (a read, a search, a download).

    Its reads run outside any write transaction, and the records `record()` is given are
    appended when the block ends, committed before this returns, so before the front door
    sends a byte; a use case that raises appends nothing (its refusal is audited by the
    front door, as everywhere), and one that tries to write anything else fails
    (RuntimeError) before anything is written. The decision is made on what was committed
    as each statement ran, as READ COMMITTED always gave it (bench/profiles/api-load.md):

    - PostgreSQL: the reads in autocommit, and the one record a read makes appended by one
      statement that commits itself: no BEGIN and COMMIT round trips (several records
      commit together in a transaction of their own).
    - SQLite: the reads in a read transaction that takes no writer lock, the records
      appended in a short write transaction, shared with the appends other threads of
      the process make meanwhile (`db.GroupCommit`); holding the writer lock for the
      whole decision serialised every read on the host.
    - A SQLite database without a writer lock (in memory, or a test's rolled-back
      connection): one transaction, as before."""
    pending: list[tuple[dict[str, Any], list[str]]] = []
    if database.dialect != "postgresql" and database.writer_lock is None:
        with database.transaction() as session:
            yield session
        return
    with database.read_session() as session:
        session.info[_DEFERRED] = pending
        yield session
        del session.info[_DEFERRED]
        if database.dialect == "postgresql" and len(pending) == 1:
            with appending(core_connection(session)) as connection:
                _insert(connection, *pending.pop())
    if pending:
        database.appends.run(functools.partial(_insert_all, pending))


def _insert_all(pending: list[tuple[dict[str, Any], list[str]]], connection: Connection) -> None:
    for values, references in pending:
        _insert(connection, values, references)


def record_refusal(database: Database, entry: AuditEntry, clock: Clock = _SYSTEM_CLOCK) -> None:
    """Record a refused (or failed) request in a transaction of its own, once the refused
    work has been rolled back: the one way every front door audits a refusal.

    The refusal stands even if this fails (the database may be what failed), so a failure
    is logged for the operator rather than raised. On SQLite it commits with the other
    appends the worker's threads make meanwhile (`db.GroupCommit`): a flood of refused
    requests would otherwise queue one write transaction each on the writer lock.
    """
    values, references, _ = _record_values(entry, clock.now())
    try:
        database.appends.run(functools.partial(_insert_all, [(values, references)]))
    except SQLAlchemyError as exc:
        log.error(
            "could not audit a refused request",
            extra={"error": type(exc).__name__, "reason": entry.outcome_desc},
        )
