"""The console's child view: for one NHS number, what the IG lead's organisation holds or
takes part in — every Consent it may read on a timeline with its part in the consent
decision, its advice requests with due dates and status, the documents it is related to,
and who accessed each document, allowed or refused.

Nothing here is a new rule: the patient is found as the API finds it (404 for a child the
organisation has no relationship with), Consents as `consent.queries.consents_of`, requests
as `advice_requests.queries.tasks_of`, documents as `documents.access.related_to` with the
read decision of `documents.access.decide_document` (a document's title is shown only if
the organisation may read the document now), accesses as the audit trail's `visible_to`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

from sqlalchemy import select, true
from sqlalchemy.orm import Session

from exchange.advice_requests.clock_rules import business_status
from exchange.advice_requests.models import TaskRow
from exchange.advice_requests.queries import TaskFilters, tasks_of
from exchange.agreements.models import Organisation
from exchange.audit.events import AuditKind, Entity
from exchange.audit.models import AuditEntityRef, AuditRecord
from exchange.audit.service import record
from exchange.caller import Caller
from exchange.clock import london_date
from exchange.consent.decision import Considered, Decision
from exchange.consent.explain import describe_maker
from exchange.consent.queries import ConsentFilters, consents_of
from exchange.consent.records import UNDATED, consent_record
from exchange.consent.service import evaluate
from exchange.documents.access import (
    Decided,
    decide_document,
    decision_select,
    readable_documents,
    related_to,
)
from exchange.documents.models import DocumentRow
from exchange.errors import NotFound
from exchange.patients.service import find_by_nhs_number, view_of, visible_patient
from exchange.trail.entries import LogEntry, log_entry
from exchange.trail.queries import visible_to

#: Accesses listed per document (newest first); the access log has the rest.
ACCESSES_PER_DOCUMENT: Final = 50


@dataclass(frozen=True, slots=True)
class ConsentLine:
    """One Consent on the timeline, with its part in the decision."""

    id: str
    recorded_by: str
    made_on: date | None
    status: str
    provision: str
    purposes: tuple[str, ...]
    maker: str
    #: decided, agreed, or ignored; `note` says why.
    part: str
    note: str
    contested: bool


@dataclass(frozen=True, slots=True)
class TheDecision:
    """The consent decision the timeline explains."""

    recipient: str
    purpose: str
    at: datetime
    permit: bool
    reason: str | None
    deciding: str | None
    life_stage: str
    #: How many Consents took part that the organisation may not read (recorded by
    #: others, for a child it has no care relationship with).
    unseen: int


@dataclass(frozen=True, slots=True)
class RequestLine:
    """One advice request the organisation takes part in."""

    id: str
    task_type: str
    requester: str
    owner: str
    status: str
    business_status: str
    received: date
    due: date
    notes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DocumentLine:
    """One document the organisation holds or is related to, and who accessed it."""

    id: str
    doc_type: str
    #: None when the organisation may not read the document now (`withheld` says why).
    title: str | None
    withheld: str | None
    custodian: str
    date: datetime
    status: str
    accesses: tuple[LogEntry, ...]


@dataclass(frozen=True, slots=True)
class ChildRecord:
    """Everything the child view shows."""

    nhs_number: str
    name: str
    birth_date: date
    decision: TheDecision
    consents: tuple[ConsentLine, ...]
    requests: tuple[RequestLine, ...]
    documents: tuple[DocumentLine, ...]


def _name(resource: dict[str, Any]) -> str:
    names = resource.get("name") or []
    first = names[0] if names and isinstance(names[0], dict) else {}
    parts = [*(first.get("given") or []), first.get("family") or ""]
    return " ".join(str(part) for part in parts if part) or "(no name given)"


def _ods(session: Session, organisation_id: uuid.UUID) -> str:
    organisation = session.get(Organisation, organisation_id)
    return organisation.ods if organisation else "?"


def _part(item: Considered | None, decision: Decision) -> tuple[str, str]:
    if item is None:
        return "not considered", ""
    if item.ignored is not None:
        return "ignored", f"{item.ignored.value}: {item.note}"
    decided = decision.deciding is not None and decision.deciding.id == item.consent.id
    return ("decided" if decided else "agreed"), item.note


def _consents(
    session: Session, caller: Caller, patient_id: uuid.UUID, decision: Decision
) -> tuple[list[ConsentLine], int]:
    rows = session.scalars(
        consents_of(caller.organisation_id, ConsentFilters(patient_ids=[patient_id]))
    ).all()
    parts = {item.consent.id: item for item in decision.considered}
    lines = []
    for row in sorted(rows, key=lambda r: (r.date_time, str(r.id))):
        consent = consent_record(row.resource, str(row.id), str(patient_id))
        part, note = _part(parts.get(str(row.id)), decision)
        lines.append(
            ConsentLine(
                id=str(row.id),
                recorded_by=_ods(session, row.organisation_id),
                made_on=None if consent.date_time == UNDATED else london_date(consent.date_time),
                status=row.status,
                provision=str(consent.provision_type),
                purposes=tuple(sorted(consent.purposes)),
                maker=describe_maker(consent.maker),
                part=part,
                note=note,
                contested=row.contested,
            )
        )
    return lines, len(parts.keys() - {line.id for line in lines})


def _requests(
    session: Session, caller: Caller, patient_id: uuid.UUID, today: date
) -> list[RequestLine]:
    rows: list[TaskRow] = list(
        session.scalars(
            tasks_of(caller.organisation_id, TaskFilters(patient_ids=[patient_id]), today).order_by(
                TaskRow.authored_on.desc()
            )
        )
    )
    lines = []
    for row in rows:
        status = business_status(row.status, row.due_date, today, row.completed_on)
        notes = tuple(
            str(note.get("text", ""))
            for note in row.resource.get("note") or []
            if isinstance(note, dict)
        )
        lines.append(
            RequestLine(
                id=str(row.id),
                task_type=row.task_type,
                requester=_ods(session, row.requester_id),
                owner=_ods(session, row.owner_id),
                status=row.status,
                business_status=status.value if status else "",
                received=row.received_on,
                due=row.due_date,
                notes=notes,
            )
        )
    return lines


def _accesses(
    session: Session, caller: Caller, document_id: uuid.UUID, nhs_number: str
) -> tuple[LogEntry, ...]:
    rows = session.scalars(
        select(AuditRecord)
        .where(
            visible_to(caller.organisation),
            AuditRecord.id.in_(
                select(AuditEntityRef.audit_id).where(
                    AuditEntityRef.reference == f"DocumentReference/{document_id}"
                )
            ),
        )
        .order_by(AuditRecord.recorded.desc(), AuditRecord.id.desc())
        .limit(ACCESSES_PER_DOCUMENT)
    )
    return tuple(log_entry(row, nhs_number) for row in rows)


def _title(resource: dict[str, Any]) -> str:
    for content in resource.get("content") or []:
        attachment = content.get("attachment") if isinstance(content, dict) else None
        if isinstance(attachment, dict) and attachment.get("title"):
            return str(attachment["title"])
    return "(untitled)"


def _documents(
    session: Session, caller: Caller, patient_id: uuid.UUID, nhs_number: str, now: datetime
) -> list[DocumentLine]:
    rows = readable_documents(
        session,
        decision_select(true())
        .where(
            DocumentRow.patient_id == patient_id,
            related_to(caller.organisation_id, caller.role),
        )
        .order_by(DocumentRow.date.desc(), DocumentRow.id),
    )
    decided = Decided()
    lines = []
    for row in rows:
        decision = decide_document(session, row, caller, now, decided)
        lines.append(
            DocumentLine(
                id=str(row.id),
                doc_type=row.doc_type,
                title=_title(row.resource) if decision.allowed else None,
                withheld=None if decision.allowed else str(decision.reason or "not-visible"),
                custodian=row.custodian_ods,
                date=row.date,
                status=row.status,
                accesses=_accesses(session, caller, row.id, nhs_number),
            )
        )
    return lines


def child_record(
    session: Session,
    caller: Caller,
    nhs_number: str,
    recipient: str,
    purpose: str,
    at: datetime,
    now: datetime,
) -> ChildRecord:
    """The child view of `nhs_number` for the caller's organisation (404 for a child it
    has no relationship with), explaining the consent decision for `recipient` and
    `purpose` at `at`; audited as a page view naming the child and the documents shown."""
    found = find_by_nhs_number(session, nhs_number)
    patient = visible_patient(session, found.id, caller.organisation_id) if found else None
    if patient is None:
        raise NotFound("Patient")
    decision = evaluate(session, patient, recipient, purpose, at)
    consents, unseen = _consents(session, caller, patient.id, decision)
    requests = _requests(session, caller, patient.id, london_date(now))
    documents = _documents(session, caller, patient.id, nhs_number, now)
    record(
        session,
        caller.audit_entry(
            AuditKind.PAGE_VIEW,
            entities=(
                Entity(f"Patient/{patient.id}", "patient"),
                *(Entity(f"DocumentReference/{d.id}") for d in documents if d.title is not None),
            ),
            patient_id=patient.id,
            details={"page": "child-view", "recipient": recipient, "purpose": purpose},
        ),
        at=now,
    )
    view = view_of(session, patient, caller.organisation_id)
    return ChildRecord(
        nhs_number=patient.nhs_number,
        name=_name(view.resource),
        birth_date=patient.birth_date,
        decision=TheDecision(
            recipient=recipient,
            purpose=purpose,
            at=at,
            permit=decision.permit,
            reason=decision.reason.value if decision.reason else None,
            deciding=decision.deciding.id if decision.deciding else None,
            life_stage=str(decision.life_stage),
            unseen=unseen,
        ),
        consents=tuple(consents),
        requests=tuple(requests),
        documents=tuple(documents),
    )
