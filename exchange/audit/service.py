"""`record()`: the one way anything is written to the audit trail.

Every feature calls it inside the transaction of the change it audits, so the change and
its record commit together or not at all. For reads, the caller commits the record before
sending any personal data; if that commit fails the request fails closed (`audit.md`).
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from exchange.audit.chain import canonical_json
from exchange.audit.events import AuditEntry, to_fhir
from exchange.audit.models import AuditEntityRef, AuditRecord
from exchange.clock import Clock, SystemClock
from exchange.db import Database

log = logging.getLogger(__name__)

_SYSTEM_CLOCK = SystemClock()


def record(
    session: Session, entry: AuditEntry, clock: Clock = _SYSTEM_CLOCK, *, at: datetime | None = None
) -> AuditRecord:
    """Add an (unsealed) audit record for `entry` to the session's transaction, recorded
    `at` (a use case's `now`) or by `clock`."""
    event_id = uuid.uuid4()
    recorded = at or clock.now()
    actor = entry.actor
    row = AuditRecord(
        event_id=event_id,
        recorded=recorded,
        payload=canonical_json(to_fhir(entry, event_id, recorded)),
        kind=entry.kind.value,
        action=entry.action.value,
        outcome=entry.outcome.value,
        agent_client_id=actor.client_id,
        agent_user=actor.user if actor.client_id is None else None,
        agent_org=actor.organisation,
        custodian_org=entry.custodian,
        patient_id=entry.patient_id,
        purpose=actor.purpose,
        break_glass=actor.break_glass,
        request_id=entry.request_id,
        review_reason=entry.review_reason.value if entry.review_reason is not None else None,
    )
    row.entity_refs = [
        AuditEntityRef(reference=reference)
        for reference in dict.fromkeys(e.reference[:160] for e in entry.entities)
    ]
    session.add(row)
    return row


def record_refusal(database: Database, entry: AuditEntry, clock: Clock = _SYSTEM_CLOCK) -> None:
    """Record a refused (or failed) request in a transaction of its own, once the refused
    work has been rolled back: the one way every front door audits a refusal.

    The refusal stands even if this fails (the database may be what failed), so a failure
    is logged for the operator rather than raised.
    """
    try:
        with database.transaction() as session:
            record(session, entry, clock)
    except SQLAlchemyError as exc:
        log.error(
            "could not audit a refused request",
            extra={"error": type(exc).__name__, "reason": entry.outcome_desc},
        )
