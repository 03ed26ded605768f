"""Use cases over the audit trail: read one event, search events, for the caller's
organisation only (as acting organisation or custodian: `access.md`); each is audited."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from exchange.audit.events import AuditKind, Entity
from exchange.audit.models import AuditRecord
from exchange.audit.service import record
from exchange.caller import Caller
from exchange.errors import NotFound
from exchange.search import Found, Paging, keyset_page
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
