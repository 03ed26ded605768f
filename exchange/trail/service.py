"""Use cases over the audit trail: read one event, search events, and the console's access
log, for the caller's organisation only (as acting organisation or custodian:
`access.md`); each is audited."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from exchange.audit.events import AuditKind, Entity
from exchange.audit.models import AuditRecord
from exchange.audit.service import record
from exchange.caller import Caller
from exchange.errors import NotFound
from exchange.patients.models import Patient
from exchange.patients.service import can_see
from exchange.search import Found, Paging, Position, keyset_page
from exchange.trail.entries import LogEntry, log_entry
from exchange.trail.queries import EventFilters, event_resource, events_of, visible_to


def read_event(
    session: Session, caller: Caller, event_id: uuid.UUID, now: datetime
) -> dict[str, Any]:
    """One audit event the caller's organisation may see (as actor or custodian)."""
    row = session.scalars(
        select(AuditRecord).where(AuditRecord.event_id == event_id, visible_to(caller.organisation))
    ).first()
    if row is None:
        raise NotFound("AuditEvent", event_id)
    record(
        session,
        caller.audit_entry(
            AuditKind.READ, entities=(Entity(f"AuditEvent/{event_id}", "security-resource"),)
        ),
        at=now,
    )
    return event_resource(row)


def search_events(
    session: Session,
    caller: Caller,
    filters: EventFilters,
    paging: Paging,
    query: str | None,
    now: datetime,
) -> Found:
    """The caller's organisation's events matching `filters`, newest first unless told."""
    wanted = events_of(caller.organisation, filters)
    total = session.scalar(select(func.count()).select_from(wanted.subquery())) or 0
    page = keyset_page(
        session,
        wanted,
        paging,
        moment=AuditRecord.recorded,
        tiebreak=AuditRecord.id,
        parse_tiebreak=int,
    )
    record(session, caller.audit_entry(AuditKind.SEARCH, query=query), at=now)
    return Found([event_resource(row) for row in page.rows], total, page.next)


@dataclass(frozen=True, slots=True)
class LogPage:
    """One page of the console's access log: its lines, how many events match in all,
    and where the next page begins."""

    entries: list[LogEntry]
    total: int
    next: Position | None


def nhs_numbers_of(
    session: Session, patient_ids: Iterable[uuid.UUID | None]
) -> dict[uuid.UUID, str]:
    """The NHS numbers of these patients."""
    wanted = {patient_id for patient_id in patient_ids if patient_id is not None}
    if not wanted:
        return {}
    rows = session.execute(
        select(Patient.id, Patient.nhs_number).where(Patient.id.in_(sorted(wanted)))
    )
    return {row.id: row.nhs_number for row in rows}


def access_log(
    session: Session,
    caller: Caller,
    filters: EventFilters,
    paging: Paging,
    query: str | None,
    now: datetime,
) -> LogPage:
    """The console's access log: the caller's organisation's events (as acting
    organisation or custodian, as `search_events`) matching `filters`, newest first,
    with each event's child by NHS number; audited as a page view (naming the child when
    the log was filtered to one)."""
    wanted = events_of(caller.organisation, filters)
    total = session.scalar(select(func.count()).select_from(wanted.subquery())) or 0
    page = keyset_page(
        session,
        wanted,
        paging,
        moment=AuditRecord.recorded,
        tiebreak=AuditRecord.id,
        parse_tiebreak=int,
    )
    numbers = nhs_numbers_of(session, (row.patient_id for row in page.rows))
    child = None
    if len(filters.nhs_numbers) == 1:
        # Named in the audit record only if the organisation knows the child: a typed NHS
        # number must not tie it to a child it has no relationship with.
        found = session.scalar(
            select(Patient.id).where(Patient.nhs_number == filters.nhs_numbers[0])
        )
        child = found if found and can_see(session, found, caller.organisation_id) else None
    record(
        session,
        caller.audit_entry(
            AuditKind.PAGE_VIEW,
            query=query,
            patient_id=child,
            entities=(Entity(f"Patient/{child}", "patient"),) if child else (),
            details={"page": "access-log"},
        ),
        at=now,
    )
    entries = [
        log_entry(row, numbers.get(row.patient_id) if row.patient_id else None) for row in page.rows
    ]
    return LogPage(entries, total, page.next)
