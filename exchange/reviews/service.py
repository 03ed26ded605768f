"""The IG review queue (`access.md`): break-glass reads, contested consents and birth-date
corrections wait for an IG lead of each organisation that sees them (as acting
organisation or custodian, the rule of the AuditEvent API) until that lead marks them
reviewed with a note. Both use cases are audited."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Final

from sqlalchemy import Exists, Select, exists, func, select
from sqlalchemy.orm import Session

from exchange.audit.events import AuditKind, Entity
from exchange.audit.models import AuditRecord
from exchange.audit.service import record
from exchange.caller import Caller
from exchange.errors import Conflict, NotFound, Subject, invalid
from exchange.reviews.models import AuditReview
from exchange.search import Paging, keyset_page
from exchange.trail.entries import log_entry
from exchange.trail.queries import visible_to
from exchange.trail.service import LogPage, nhs_numbers_of

#: A review note: long enough to say why the access was (or was not) justified.
NOTE_MIN: Final = 10
NOTE_MAX: Final = 2000


class AlreadyReviewed(Conflict):
    """The event has been reviewed for this organisation already."""


def _flagged(organisation: str) -> Select[AuditRecord]:
    """Events visible to `organisation` that are flagged for review."""
    return select(AuditRecord).where(
        visible_to(organisation), AuditRecord.review_reason.is_not(None)
    )


def _reviewed_by(organisation: str) -> Exists:
    return exists(
        select(AuditReview.id).where(
            AuditReview.event_id == AuditRecord.event_id,
            AuditReview.organisation == organisation,
        )
    )


def review_queue(session: Session, caller: Caller, paging: Paging, now: datetime) -> LogPage:
    """The flagged events the caller's organisation has not reviewed yet, oldest first
    (`paging.descending` False); audited as a page view."""
    wanted = _flagged(caller.organisation).where(~_reviewed_by(caller.organisation))
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
    record(
        session,
        caller.audit_entry(AuditKind.PAGE_VIEW, details={"page": "review-queue"}),
        at=now,
    )
    entries = [
        log_entry(row, numbers.get(row.patient_id) if row.patient_id else None) for row in page.rows
    ]
    return LogPage(entries, total, page.next)


def mark_reviewed(
    session: Session, caller: Caller, event_id: uuid.UUID, note: str, now: datetime
) -> None:
    """Record the caller's organisation's review of a flagged event it sees, with a note
    (NOTE_MIN to NOTE_MAX characters); the event then leaves its queue. Audited with the
    note, naming the event and its patient."""
    event = session.scalars(_flagged(caller.organisation).where(AuditRecord.event_id == event_id))
    flagged = event.first()
    if flagged is None:
        raise NotFound("AuditEvent", event_id)
    note = note.strip()
    if not NOTE_MIN <= len(note) <= NOTE_MAX:
        raise invalid(
            "note", f"Enter a note of {NOTE_MIN} to {NOTE_MAX} characters saying what you found"
        )
    subject = Subject((Entity(f"AuditEvent/{event_id}", "security-resource"),), flagged.patient_id)
    already = session.scalar(
        select(AuditReview.id).where(
            AuditReview.event_id == event_id, AuditReview.organisation == caller.organisation
        )
    )
    if already is not None:
        raise AlreadyReviewed("this event has been reviewed already", subject=subject)
    reviewer = caller.actor.user or caller.actor.client_id or "unknown"
    session.add(
        AuditReview(
            event_id=event_id,
            organisation=caller.organisation,
            reviewer=reviewer,
            note=note,
            reviewed=now,
        )
    )
    record(
        session,
        caller.audit_entry(
            AuditKind.BREAK_GLASS_REVIEW,
            entities=subject.entities,
            patient_id=flagged.patient_id,
            details={"review-reason": flagged.review_reason or "", "note": note},
        ),
        at=now,
    )
