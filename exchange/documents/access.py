"""The read decision for documents (`access.md`, "The read decision"), first failure wins:
a break-glass purpose needs its justification (400 Required: the request cannot be read) →
relationship (else 404) → break-glass permission → data-sharing agreement with the
custodian for the purpose (403 no-agreement) → the consent decision (403 with its reason).
A custodian reading its own documents needs neither agreement nor consent.

A Binary follows its DocumentReference's decision; one not yet attached to a document is
readable by the organisation that uploaded it and no one else (`documents.md`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date as Day
from datetime import datetime
from typing import Any, Final

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Date,
    Select,
    String,
    and_,
    bindparam,
    exists,
    func,
    or_,
    select,
)
from sqlalchemy.orm import Session

from exchange.advice_requests.models import TaskParty, TaskRow
from exchange.advice_requests.purposes import purpose_column, purpose_of
from exchange.advice_requests.workflow import OWNER, REQUESTER
from exchange.agreements.models import Organisation
from exchange.agreements.queries import agreement_between, agreement_for
from exchange.caller import Caller
from exchange.clock import london_date
from exchange.codes import (
    BREAK_GLASS_PURPOSES,
    AccessDenialReason,
    OrganisationRole,
    Purpose,
    TaskType,
)
from exchange.consent.decision import Decision, Ignored
from exchange.consent.queries import latest_update_column, parse_versions, versions_column
from exchange.consent.service import evaluate_for
from exchange.db import Prepared, core_connection
from exchange.documents.models import BinaryRow, DocumentRow
from exchange.errors import Required
from exchange.patients.models import Patient

#: How long a break-glass justification may be (`access.md`: free text, 20-1000 characters).
JUSTIFICATION_LENGTH: Final = (20, 1000)


@dataclass(frozen=True, slots=True)
class DocumentDecision:
    """The outcome: allowed (with what allowed it), not visible at all, or refused."""

    visible: bool
    allowed: bool
    reason: AccessDenialReason | None = None
    #: The agreement that allowed it (its row id).
    agreement: uuid.UUID | None = None
    consent_ids: tuple[str, ...] = ()
    break_glass: bool = False
    #: The purpose the document was read under (None: not decided that far).
    purpose: str | None = None


@dataclass(frozen=True, slots=True)
class ReadableDocument:
    """One document as a read decides on it: its own columns and what the decision needs
    (the Task's type and reason for the read purpose, the patient's birth date for the
    consent decision, the custodian's ODS code for the audit record), and whether the
    reader is related to it. From one Core query, with no ORM entities: loading the
    document, Task, Patient and custodian as entities was a fifth of a read's server time
    (bench/profiles/api-load.md)."""

    id: uuid.UUID
    patient_id: uuid.UUID
    custodian_id: uuid.UUID
    task_id: uuid.UUID
    doc_type: str
    status: str
    date: datetime
    last_updated: datetime
    resource: dict[str, Any]
    task_type: str
    task_reason: str | None
    birth_date: Day
    custodian_ods: str
    related: bool
    #: What a read of this one document asked with it (`readable_document`).
    prefetched: Prefetched | None = None


@dataclass(frozen=True, slots=True)
class Prefetched:
    """What the read of one document asks in the same query, so that deciding it needs no
    other statement (bench/profiles/api-load.md): the purpose the reader stated or the
    Task gives, the agreement covering it, and the current version of each of the
    patient's Consents. The decision uses them only for the purpose it arrives at itself."""

    purpose: str | None
    agreement: uuid.UUID | None
    #: Every Consent's (id, version); None if one changed after the read's time (so the
    #: decision asks for them as they stood then).
    consents: list[tuple[uuid.UUID, int]] | None


NOT_VISIBLE = DocumentDecision(visible=False, allowed=False)
ALLOWED = DocumentDecision(visible=True, allowed=True)


#: The Task roles that relate an organisation to the Task's documents. A previous owner
#: keeps the Task and the Patient after forwarding, not the documents (`advice-requests.md`).
DOCUMENT_PARTIES: Final = (REQUESTER, OWNER)


def check_justification(caller: Caller) -> None:
    """A break-glass purpose (safeguarding, court order) needs `X-Justification` of 20 to
    1000 characters, whoever asks and whatever they ask for: else Required."""
    if not caller.break_glass:
        return
    low, high = JUSTIFICATION_LENGTH
    if not low <= len((caller.justification or "").strip()) <= high:
        raise Required(f"break-glass access needs X-Justification of {low} to {high} characters")


@dataclass
class Decided:
    """What a search (or any pass over several documents) has decided already, so that
    each agreement is looked up once per custodian and purpose, and each consent decision
    made once per patient and purpose, not once per document."""

    agreements: dict[tuple[uuid.UUID, str], uuid.UUID | None] = field(default_factory=dict)
    consents: dict[tuple[uuid.UUID, str], Decision] = field(default_factory=dict)


def related_to(
    organisation_id: uuid.UUID | BindParameter[uuid.UUID], role: str
) -> ColumnElement[bool]:
    """SQL: documents whose custodian is the organisation, or (unless entered in error)
    to which it is related: it is the other party of the document's Task (its requester or
    current owner), or an ICB owning a DCO quality-assurance Task for the same patient.
    Index-backed, so a search by an unrelated
    caller costs the same whether or not the child has documents."""
    # A correlated probe of the task_party key per document, not `task_id IN (SELECT …)`,
    # which hashed every Task the organisation ever took part in (bench/national.py).
    party = exists().where(
        TaskParty.task_id == DocumentRow.task_id,
        TaskParty.organisation_id == organisation_id,
        # Each role as its own comparison, not an IN list: an IN list is rendered per
        # execution, which a `Prepared` statement does not allow.
        or_(*(TaskParty.role == role for role in DOCUMENT_PARTIES)),
    )
    related: ColumnElement[bool] = party
    if role == OrganisationRole.ICB:
        related = or_(
            party,
            DocumentRow.patient_id.in_(
                select(TaskRow.patient_id).where(
                    TaskRow.owner_id == organisation_id,
                    TaskRow.task_type == TaskType.DCO_QUALITY_ASSURANCE.value,
                )
            ),
        )
    return or_(
        DocumentRow.custodian_id == organisation_id,
        and_(DocumentRow.status != "entered-in-error", related),
    )


def read_purpose(document: ReadableDocument, reader: Caller) -> str:
    """The purpose a document is read under: the one the reader states, else the purpose of
    the request it answers (an annual review's advice is read for the annual review)."""
    if not reader.purpose_assumed:
        return reader.purpose
    return purpose_of(document.task_type, document.task_reason).value


def decide_document(
    session: Session,
    document: ReadableDocument,
    reader: Caller,
    now: datetime,
    decided: Decided | None = None,
) -> DocumentDecision:
    """Whether `reader` may read `document` now (steps 3-5 of access.md); Required if a
    break-glass purpose comes without its justification. Whether the reader is related to
    the document came with it (`decision_select`); a pass over several documents passes
    `decided` to decide each agreement and consent once."""
    check_justification(reader)
    if document.custodian_id == reader.organisation_id:
        return ALLOWED
    if not document.related:
        return NOT_VISIBLE
    purpose = read_purpose(document, reader)
    break_glass = purpose in BREAK_GLASS_PURPOSES
    if break_glass and not reader.break_glass_allowed:
        return DocumentDecision(
            visible=True,
            allowed=False,
            reason=AccessDenialReason.BREAK_GLASS_NOT_PERMITTED,
            purpose=purpose,
        )
    decided = decided if decided is not None else Decided()
    prefetched = document.prefetched
    if prefetched is not None and prefetched.purpose != purpose:
        prefetched = None
    key = (document.custodian_id, purpose)
    if key not in decided.agreements:
        decided.agreements[key] = (
            prefetched.agreement
            if prefetched is not None
            else agreement_between(
                session, reader.organisation_id, document.custodian_id, purpose, london_date(now)
            )
        )
    agreement = decided.agreements[key]
    if agreement is None:
        return DocumentDecision(
            visible=True, allowed=False, reason=AccessDenialReason.NO_AGREEMENT, purpose=purpose
        )
    if break_glass:
        # Safeguarding or a court order: consent is not needed (steps 1-4 still apply).
        return DocumentDecision(
            visible=True, allowed=True, agreement=agreement, break_glass=True, purpose=purpose
        )
    key = (document.patient_id, purpose)
    decision = decided.consents.get(key)
    if decision is None:
        decision = decided.consents[key] = evaluate_for(
            session,
            document.patient_id,
            document.birth_date,
            reader.organisation,
            purpose,
            now,
            prefetched.consents if prefetched is not None else None,
        )
    return DocumentDecision(
        visible=True,
        allowed=decision.permit,
        reason=None if decision.permit else decision.reason,
        agreement=agreement,
        consent_ids=deciding_consents(decision),
        purpose=purpose,
    )


def decision_select(related: ColumnElement[bool]) -> Select[Any]:
    """SQL: documents with what deciding a read of each needs and whether the reader is
    `related`, in the columns `readable_documents` makes `ReadableDocument`s of; a caller
    adds the conditions."""
    return (
        select(
            DocumentRow.id,
            DocumentRow.patient_id,
            DocumentRow.custodian_id,
            DocumentRow.task_id,
            DocumentRow.doc_type,
            DocumentRow.status,
            DocumentRow.date,
            DocumentRow.last_updated,
            DocumentRow.resource,
            TaskRow.task_type,
            TaskRow.reason.label("task_reason"),
            Patient.birth_date,
            Organisation.ods.label("custodian_ods"),
            related.label("related"),
        )
        .join(TaskRow, TaskRow.id == DocumentRow.task_id)
        .join(Patient, Patient.id == DocumentRow.patient_id)
        .join(Organisation, Organisation.id == DocumentRow.custodian_id)
    )


def readable_documents(
    session: Session, statement: Select[Any], parameters: dict[str, Any] | None = None
) -> list[ReadableDocument]:
    """The documents a `decision_select` statement finds, run on the session's connection."""
    # The columns are labelled as the fields are named (`decision_select`).
    return [
        ReadableDocument(**{**row._mapping, "related": bool(row.related)})
        for row in core_connection(session).execute(statement, parameters or {})
    ]


def _readable_statement(icb: bool) -> Select[Any]:
    reader = bindparam("reader", type_=DocumentRow.custodian_id.type)
    role = OrganisationRole.ICB if icb else OrganisationRole.LA
    purpose = func.coalesce(
        bindparam("stated_purpose", type_=String), purpose_column(TaskRow.task_type, TaskRow.reason)
    )
    on = bindparam("on", type_=Date)
    return (
        decision_select(related_to(reader, role))
        .add_columns(
            purpose.label("purpose"),
            agreement_for(reader, DocumentRow.custodian_id, purpose, on)
            .scalar_subquery()
            .label("agreement"),
            versions_column(DocumentRow.patient_id).label("consent_versions"),
            latest_update_column(DocumentRow.patient_id).label("consents_updated"),
        )
        .where(DocumentRow.id == bindparam("document_id"))
    )


#: Built once per kind of reader (an ICB is also related through DCO tasks): asked on
#: every document and Binary read (bench/profiles/api-load.md).
_STATEMENTS: Final = {icb: _readable_statement(icb) for icb in (False, True)}
_READABLE: Final = {icb: Prepared(statement) for icb, statement in _STATEMENTS.items()}
_FIELDS: Final = tuple(_STATEMENTS[False].selected_columns.keys())
_PREFETCHED: Final = ("purpose", "agreement", "consent_versions", "consents_updated")


def readable_document(
    session: Session, document_id: uuid.UUID, reader: Caller, now: datetime
) -> ReadableDocument | None:
    """A document, what deciding a read of it needs, and whether the reader is related to
    it, in one query on the session's connection (None: no such document); with it what
    the decision would otherwise ask in two more (`Prefetched`)."""
    statement = _READABLE[reader.role == OrganisationRole.ICB]
    parameters = {
        "reader": reader.organisation_id,
        "document_id": document_id,
        "stated_purpose": None if reader.purpose_assumed else reader.purpose,
        "on": london_date(now),
    }
    row = statement.first(core_connection(session), parameters)
    if row is None:
        return None
    found = dict(zip(_FIELDS, row, strict=True))
    purpose, agreement, versions, updated = (found.pop(name) for name in _PREFETCHED)
    prefetched = Prefetched(
        purpose,
        agreement,
        parse_versions(versions) if updated is None or updated <= now else None,
    )
    return ReadableDocument(**{**found, "related": bool(found["related"])}, prefetched=prefetched)


def decide_binary(
    session: Session, binary: BinaryRow, reader: Caller, now: datetime
) -> tuple[DocumentDecision, ReadableDocument | None]:
    """Whether `reader` may read `binary`'s content now, and the document that decided it.
    Unattached, it has been disclosed to no one: only its uploader reads it (no agreement
    or consent is involved). Attached, its DocumentReference's decision applies."""
    if binary.document_id is None:
        return (ALLOWED if binary.uploader_id == reader.organisation_id else NOT_VISIBLE), None
    document = readable_document(session, binary.document_id, reader, now)
    if document is None:
        return NOT_VISIBLE, None
    return decide_document(session, document, reader, now), document


#: For a refusal with no deciding Consent, the Consents that caused it (IHE BALP's
#: AuthZ-consent event names "the Consent(s) that decided it").
_CAUSES: Final = {
    AccessDenialReason.CONSENT_WITHDRAWN: Ignored.NOT_ACTIVE,
    AccessDenialReason.NOT_A_RECIPIENT: Ignored.NOT_FOR_RECIPIENT,
    AccessDenialReason.DECISION_MAKER_NOT_VALID: Ignored.MAKER_NOT_VALID,
    AccessDenialReason.CONSENT_LAPSED_YOUNG_PERSON: Ignored.LAPSED,
}


def deciding_consents(decision: Decision) -> tuple[str, ...]:
    """The Consent that decided, or for a fallback refusal the ones that caused it."""
    if decision.deciding is not None:
        return (decision.deciding.id,)
    cause = _CAUSES.get(decision.reason) if decision.reason is not None else None
    return tuple(
        c.consent.id for c in decision.considered if cause is not None and c.ignored is cause
    )


__all__ = [
    "ALLOWED",
    "NOT_VISIBLE",
    "Decided",
    "DocumentDecision",
    "Prefetched",
    "Purpose",
    "ReadableDocument",
    "check_justification",
    "decide_binary",
    "decide_document",
    "decision_select",
    "readable_document",
    "readable_documents",
    "related_to",
]
