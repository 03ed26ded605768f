"""Consent use cases: record, change status (withdrawal), list a patient's consents as the
decision engine's inputs, and decide."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from exchange.codes import ConsentReview, ConsentValidity, code_system_url
from exchange.consent.decision import Decision, decide
from exchange.consent.models import ConsentRow
from exchange.consent.profile import decision_maker_warning
from exchange.consent.records import CapacityAssessment, ConsentRecord, consent_record
from exchange.patients.models import Patient
from exchange.patients.service import in_care_of
from exchange.versions import keep_version, stamp

_VALIDITY_SYSTEM: Final = code_system_url("consent-validity")
_REVIEW_SYSTEM: Final = code_system_url("consent-review")


def visible_to(organisation_id: uuid.UUID) -> ColumnElement[bool]:
    """Consents an organisation may read: those it recorded, and those of patients for whom
    it is or was a Task's requester or owner (a care relationship; merely registering the
    child is not one: `access.md`)."""
    return or_(ConsentRow.organisation_id == organisation_id, ConsentRow.patient_id.in_(in_care_of(organisation_id)))


def visible_consent(session: Session, consent_id: uuid.UUID, organisation_id: uuid.UUID) -> ConsentRow | None:
    """The Consent if the organisation may read it; None either way otherwise."""
    return session.scalars(select(ConsentRow).where(ConsentRow.id == consent_id, visible_to(organisation_id))).first()


def _reverses_another_organisation(session: Session, patient: Patient, record: ConsentRecord,
                                   organisation_id: uuid.UUID) -> bool:
    """Whether `record` reverses, for one of its purposes, the latest decision another
    organisation recorded for that purpose (permit after deny, or deny after permit)."""
    rows = session.scalars(
        select(ConsentRow)
        .where(ConsentRow.patient_id == patient.id, ConsentRow.organisation_id != organisation_id,
               ConsentRow.status == "active", ConsentRow.maker_valid.is_(True))
        .order_by(ConsentRow.date_time.desc(), ConsentRow.id)
    )
    others = [consent_record(row.resource, str(row.id), str(patient.id)) for row in rows]
    for purpose in record.purposes:
        latest = next((other for other in others if purpose in other.purposes), None)
        if latest is not None and latest.provision_type != record.provision_type:
            return True
    return False


def records_for(session: Session, patient: Patient, exclude: uuid.UUID | None = None) -> list[ConsentRecord]:
    """Every stored Consent of a patient as decision input (all statuses)."""
    rows = session.scalars(select(ConsentRow).where(ConsentRow.patient_id == patient.id).order_by(ConsentRow.date_time))
    return [consent_record(row.resource, str(row.id), str(patient.id)) for row in rows if row.id != exclude]


def assessment_pool(records: list[ConsentRecord]) -> list[CapacityAssessment]:
    """The capacity assessments known for a patient: those contained in any of their
    consents except ones entered in error."""
    return [a for r in records if r.status != "entered-in-error" for a in r.assessments]


def _tagged(resource: dict[str, Any], maker_invalid: bool, contested: bool) -> dict[str, Any]:
    """The resource with the server's tags (decision-maker-not-valid, contested) set or
    cleared; a client cannot set or remove them."""
    tagged = dict(resource)
    meta = dict(tagged.get("meta") or {})
    tags = [t for t in meta.get("tag") or []
            if not (isinstance(t, dict) and t.get("system") in (_VALIDITY_SYSTEM, _REVIEW_SYSTEM))]
    if maker_invalid:
        tags.append({"system": _VALIDITY_SYSTEM, "code": ConsentValidity.DECISION_MAKER_NOT_VALID.value,
                     "display": "The decision-maker was not valid at the consent's date"})
    if contested:
        tags.append({"system": _REVIEW_SYSTEM, "code": ConsentReview.CONTESTED.value,
                     "display": "Reverses another organisation's latest decision for the same purpose"})
    if tags:
        meta["tag"] = tags
    else:
        meta.pop("tag", None)
    tagged["meta"] = meta
    return tagged


@dataclass(frozen=True, slots=True)
class Stored:
    """A stored Consent version and, if its decision-maker is not valid, why."""

    row: ConsentRow
    warning: str | None

    @property
    def contested(self) -> bool:
        """Whether it reverses another organisation's decision (for IG review)."""
        return self.row.contested


def _validity(session: Session, patient: Patient, resource: dict[str, Any], consent_id: uuid.UUID) -> str | None:
    record = consent_record(resource, str(consent_id), str(patient.id))
    pool = assessment_pool([*records_for(session, patient, exclude=consent_id), record])
    return decision_maker_warning(patient.birth_date, record, pool)


def record_consent(
    session: Session, resource: dict[str, Any], patient: Patient, organisation_id: uuid.UUID, now: datetime
) -> Stored:
    """Store a new Consent (validated by the caller), tagging an invalid decision-maker and
    a decision that reverses another organisation's (it is still applied: `access.md`)."""
    consent_id = uuid.uuid4()
    warning = _validity(session, patient, resource, consent_id)
    record = consent_record(resource, str(consent_id), str(patient.id))
    contested = warning is None and _reverses_another_organisation(session, patient, record, organisation_id)
    stored = stamp(_tagged(resource, warning is not None, contested), consent_id, 1, now)
    row = ConsentRow(
        id=consent_id,
        patient_id=patient.id,
        organisation_id=organisation_id,
        status=stored["status"],
        date_time=consent_record(stored, str(consent_id), str(patient.id)).date_time,
        maker_valid=warning is None,
        contested=contested,
        version=1,
        last_updated=now,
        resource=stored,
    )
    session.add(row)
    session.flush()
    keep_version(session, stored, now)
    return Stored(row, warning)


def change_consent(session: Session, row: ConsentRow, resource: dict[str, Any], patient: Patient, now: datetime) -> Stored:
    """Store a new version of a Consent (a status change, checked by the caller)."""
    warning = _validity(session, patient, resource, row.id)
    row.version += 1
    stored = stamp(_tagged(resource, warning is not None, row.contested), row.id, row.version, now)
    row.resource = stored
    row.status = stored["status"]
    row.maker_valid = warning is None
    row.last_updated = now
    keep_version(session, stored, now)
    return Stored(row, warning)


def evaluate(session: Session, patient: Patient, recipient: str, purpose: str, at: datetime) -> Decision:
    """The consent decision for disclosing this patient's information to `recipient`."""
    return decide(patient.birth_date, records_for(session, patient), recipient, purpose, at)

