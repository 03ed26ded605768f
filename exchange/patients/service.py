"""Patient use cases: registration (one Patient per NHS number; every registrant keeps its
own view of it and learns nothing of the others), reads, searches and updates, each
audited (`access.md`, "register Patient", "update Patient", "see a Patient").

Every use case takes the session of the one transaction its front door opened, the
`Caller` and the current instant; it decides in the spec's order (404, 412, 422, 403) and
raises a domain error, or writes and returns the Patient as the caller sees it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

from sqlalchemy import Select, bindparam, exists, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from exchange.agreements.queries import party_to_an_agreement
from exchange.audit.events import AuditKind, Entity
from exchange.audit.service import record
from exchange.caller import Caller
from exchange.clock import london_date
from exchange.codes import NHS_NUMBER_SYSTEM, AccessDenialReason, ReviewReason
from exchange.db import Database, Prepared, Write, core_connection
from exchange.errors import AccessDenied, Conflict, Duplicate, Forbidden, NotFound, invalid
from exchange.fhir.validation import validate_resource
from exchange.patients.models import Patient, PatientAccess, PatientRegistration
from exchange.patients.profile import patient_profile_issues
from exchange.versions import all_versions, check_version, keep_version, read_version, stamp

REGISTRANT: Final = "registrant"
TASK_REQUESTER: Final = "task-requester"
TASK_OWNER: Final = "task-owner"
CUSTODIAN: Final = "custodian"
#: Relationships that are care, not mere registration: a Task's requester or owner, now or
#: before (`access.md`: who reads a patient's Consents).
CARE_RELATIONSHIPS: Final = (TASK_REQUESTER, TASK_OWNER)
#: What a Patient may hold (UK GDPR Art. 5(1)(c), `api.md`): the exchange is not a
#: case-management system, so anything else is refused by the profile.
KEPT_ELEMENTS: Final = ("identifier", "birthDate", "name", "gender")


class BirthDateConflict(Conflict):
    """The NHS number is registered with a different birth date (409)."""


class NotFirstRegistrant(Forbidden):
    """Only the organisation that registered a patient first may update it (403)."""


@dataclass(frozen=True, slots=True)
class Registration:
    """The outcome of registering a Patient: the patient, the caller's own view of it, and
    whether this was the organisation's first registration of that NHS number (201) or a
    repeat (200)."""

    patient: Patient
    view: PatientRegistration
    first_for_organisation: bool


@dataclass(frozen=True, slots=True)
class BirthDateCorrection:
    """A changed birth date: consent decisions depend on it, so IG reviews it."""

    old: date
    new: date


@dataclass(frozen=True, slots=True)
class Updated:
    """The first registrant's new view, and the birth-date correction it made, if any."""

    view: PatientRegistration
    correction: BirthDateCorrection | None


def nhs_number_of(resource: dict[str, Any]) -> str | None:
    """The NHS number identifier of a Patient resource, if it has one."""
    for identifier in resource.get("identifier") or []:
        if isinstance(identifier, dict) and identifier.get("system") == NHS_NUMBER_SYSTEM:
            value = identifier.get("value")
            return value if isinstance(value, str) else None
    return None


def find_by_nhs_number(session: Session, nhs_number: str) -> Patient | None:
    """The Patient with this NHS number, whoever registered it."""
    return session.scalars(select(Patient).where(Patient.nhs_number == nhs_number)).first()


def _grant_statement(dialect_insert: Any) -> Any:
    return (
        dialect_insert(PatientAccess)
        .values(
            patient_id=bindparam("patient_id"),
            organisation_id=bindparam("organisation_id"),
            relationship=bindparam("relationship"),
            since=bindparam("since"),
        )
        .on_conflict_do_nothing()
        .returning(PatientAccess.patient_id)
    )


#: Built once per dialect (hot paths: every request, upload and document; see
#: bench/profiles/api-load.md for why statements are built once).
_GRANT: Final = {
    "postgresql": Prepared(_grant_statement(pg_insert)),
    "sqlite": Prepared(_grant_statement(sqlite_insert)),
}
_RELATED: Final = exists().where(
    PatientAccess.patient_id == bindparam("patient_id"),
    PatientAccess.organisation_id == bindparam("organisation_id"),
)
_CAN_SEE: Final = select(_RELATED)
_VISIBLE: Final = select(Patient).where(Patient.id == bindparam("patient_id"), _RELATED)


def grant_access(
    session: Session,
    patient_id: uuid.UUID,
    organisation_id: uuid.UUID,
    relationship: str,
    now: datetime,
) -> bool:
    """Relate an organisation to a patient; True if the relationship is new. Concurrent
    grants of the same relationship are harmless (the insert ignores a duplicate)."""
    return _granted(
        core_connection(session), _access(patient_id, organisation_id, relationship, now)
    )


def access_write(
    patient_id: uuid.UUID, organisation_id: uuid.UUID, relationship: str, now: datetime
) -> Write:
    """`grant_access` as one of a use case's writes (`db.write_together`)."""
    values = _access(patient_id, organisation_id, relationship, now)
    return Write(
        _GRANT["postgresql"], values, alone=lambda connection: _granted(connection, values)
    )


def _granted(connection: Connection, values: dict[str, Any]) -> bool:
    """Insert the relationship `values` in this dialect's way; True if it is new."""
    return bool(_GRANT[connection.dialect.name].rows(connection, values))


def _access(
    patient_id: uuid.UUID, organisation_id: uuid.UUID, relationship: str, now: datetime
) -> dict[str, Any]:
    return {
        "patient_id": patient_id,
        "organisation_id": organisation_id,
        "relationship": relationship,
        "since": now,
    }


def can_see(session: Session, patient_id: uuid.UUID, organisation_id: uuid.UUID) -> bool:
    """Whether the organisation has any relationship to the patient."""
    return bool(
        session.scalar(_CAN_SEE, {"patient_id": patient_id, "organisation_id": organisation_id})
    )


def in_care_of(organisation_id: uuid.UUID) -> Select[uuid.UUID]:
    """The ids of patients for whom the organisation is or was a Task's requester or owner."""
    return select(PatientAccess.patient_id).where(
        PatientAccess.organisation_id == organisation_id,
        PatientAccess.relationship.in_(CARE_RELATIONSHIPS),
    )


_VISIBLE_ID: Final = Prepared(
    select(Patient.id).where(Patient.id == bindparam("patient_id"), _RELATED)
)


def visible_patient_id(
    session: Session, patient_id: uuid.UUID, organisation_id: uuid.UUID
) -> uuid.UUID | None:
    """`visible_patient`, when only whether (and so the id) is needed: a document upload."""
    row = _VISIBLE_ID.first(
        core_connection(session), {"patient_id": patient_id, "organisation_id": organisation_id}
    )
    return row[0] if row is not None else None


def visible_patient(
    session: Session, patient_id: uuid.UUID, organisation_id: uuid.UUID
) -> Patient | None:
    """The patient if the organisation may see them; None either way otherwise, so a caller
    with no relationship cannot tell whether the patient exists. One query."""
    return session.scalars(
        _VISIBLE, {"patient_id": patient_id, "organisation_id": organisation_id}
    ).first()


def view_of(session: Session, patient: Patient, organisation_id: uuid.UUID) -> PatientRegistration:
    """The Patient as `organisation_id` sees it: its own registration if it registered the
    patient, else (a Task party or custodian) the first registrant's."""
    views = session.scalars(
        select(PatientRegistration).where(
            PatientRegistration.patient_id == patient.id,
            (PatientRegistration.organisation_id == organisation_id)
            | PatientRegistration.first.is_(True),
        )
    ).all()
    own = [view for view in views if view.organisation_id == organisation_id]
    return own[0] if own else next(view for view in views if view.first)


def _kept(resource: dict[str, Any], nhs_number: str) -> dict[str, Any]:
    """Only what the exchange keeps of a (validated) Patient."""
    kept: dict[str, Any] = {
        "resourceType": "Patient",
        "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": nhs_number}],
    }
    for element in KEPT_ELEMENTS[1:]:
        if element in resource:
            kept[element] = resource[element]
    return kept


def register(
    session: Session, resource: dict[str, Any], organisation_id: uuid.UUID, now: datetime
) -> Registration:
    """Register a (validated) Patient for an organisation.

    A new NHS number creates the Patient, with the organisation as its first registrant.
    A known one makes the organisation a registrant with its own view (the shared NHS
    number and birth date, its own name and gender) without revealing who else registered
    it; a repeat returns the organisation's view unchanged. A birth date that contradicts
    the stored one raises BirthDateConflict.
    """
    nhs_number = nhs_number_of(resource)
    if nhs_number is None:
        raise ValueError("a Patient needs an NHS number")
    birth_date = date.fromisoformat(resource["birthDate"])
    patient = find_by_nhs_number(session, nhs_number)
    first_registrant = patient is None
    if patient is None:
        patient = Patient(id=uuid.uuid4(), nhs_number=nhs_number, birth_date=birth_date)
        session.add(patient)
        session.flush()  # a concurrent first registration fails here, on the unique key
    elif patient.birth_date != birth_date:
        raise BirthDateConflict("the NHS number is registered with a different birth date")
    existing = session.scalars(
        select(PatientRegistration).where(
            PatientRegistration.patient_id == patient.id,
            PatientRegistration.organisation_id == organisation_id,
        )
    ).first()
    if existing is not None:
        return Registration(patient, existing, first_for_organisation=False)
    view_id = patient.id if first_registrant else uuid.uuid4()
    stored = stamp(_kept(resource, nhs_number), view_id, 1, now)
    stored["id"] = str(patient.id)  # every view is the one Patient
    view = PatientRegistration(
        id=view_id,
        patient_id=patient.id,
        organisation_id=organisation_id,
        first=first_registrant,
        version=1,
        last_updated=now,
        resource=stored,
    )
    session.add(view)
    session.flush()  # a concurrent registration by the same organisation fails here
    _keep_view_version(session, view, now)
    grant_access(session, patient.id, organisation_id, REGISTRANT, now)
    return Registration(patient, view, first_for_organisation=True)


def update(
    session: Session,
    patient: Patient,
    organisation_id: uuid.UUID,
    resource: dict[str, Any],
    now: datetime,
) -> Updated:
    """The first registrant stores a new version of its Patient (the NHS number cannot
    change: checked by the caller). A birth-date correction reaches every registrant's
    view, since consent decisions for the child depend on it."""
    view = view_of(session, patient, organisation_id)
    if not view.first or view.organisation_id != organisation_id:
        raise NotFirstRegistrant(
            "only the organisation that registered the patient first may update it"
        )
    new_birth_date = date.fromisoformat(resource["birthDate"])
    correction = None
    if new_birth_date != patient.birth_date:
        correction = BirthDateCorrection(patient.birth_date, new_birth_date)
        patient.birth_date = new_birth_date
        others = session.scalars(
            select(PatientRegistration).where(
                PatientRegistration.patient_id == patient.id, PatientRegistration.id != view.id
            )
        )
        for other in others:
            _next_version(
                session, other, {**other.resource, "birthDate": new_birth_date.isoformat()}, now
            )
    _next_version(session, view, _kept(resource, patient.nhs_number), now)
    return Updated(view, correction)


def _next_version(
    session: Session, view: PatientRegistration, resource: dict[str, Any], now: datetime
) -> None:
    view.version += 1
    view.resource = {**stamp(resource, view.id, view.version, now), "id": str(view.patient_id)}
    view.last_updated = now
    _keep_view_version(session, view, now)


def _keep_view_version(session: Session, view: PatientRegistration, now: datetime) -> None:
    """Each view's versions are kept under the view's id (the first one's is the patient's)."""
    keep_version(session, {**view.resource, "id": str(view.id)}, now)


def view_version(view: PatientRegistration, stored: dict[str, Any]) -> dict[str, Any]:
    """A kept version of a view, as served (with the patient's id)."""
    return {**stored, "id": str(view.patient_id)}


# --- use cases ------------------------------------------------------------------------------


def _entities(patient_id: uuid.UUID) -> tuple[Entity, ...]:
    return (Entity(f"Patient/{patient_id}", "patient"),)


def _valid_patient(data: Any, now: datetime) -> dict[str, Any]:
    """R4, the Patient profile, and a birth date that is not in the future."""
    resource = validate_resource(data, "Patient", patient_profile_issues)
    if date.fromisoformat(resource["birthDate"]) > london_date(now):
        raise invalid("Patient.birthDate", "Patient.birthDate is in the future", "value")
    return resource


def _visible(session: Session, caller: Caller, patient_id: uuid.UUID) -> Patient:
    patient = visible_patient(session, patient_id, caller.organisation_id)
    if patient is None:
        raise NotFound("Patient", patient_id)
    return patient


def register_patient(
    session: Session, caller: Caller, data: Any, conditional_nhs_number: str | None, now: datetime
) -> Registration:
    """Register a child or young person. `conditional_nhs_number`: the NHS number of a
    conditional create (If-None-Exist), or None for a plain create."""
    resource = _valid_patient(data, now)
    nhs_number = nhs_number_of(resource)
    if conditional_nhs_number is not None and conditional_nhs_number != nhs_number:
        raise invalid(
            "Patient.identifier",
            "If-None-Exist names another NHS number than the resource",
            "invariant",
        )
    if not party_to_an_agreement(session, caller.organisation_id, london_date(now)):
        raise AccessDenied(
            AccessDenialReason.NO_AGREEMENT,
            "registering a patient needs a data-sharing agreement in force",
        )
    existing = find_by_nhs_number(session, nhs_number or "")
    if (
        conditional_nhs_number is None
        and existing is not None
        and can_see(session, existing.id, caller.organisation_id)
    ):
        raise Duplicate(
            "a Patient with this NHS number is already registered; "
            "use If-None-Exist for a conditional create"
        )
    registration = register(session, resource, caller.organisation_id, now)
    record(
        session,
        caller.audit_entry(
            AuditKind.CREATE,
            entities=_entities(registration.patient.id),
            patient_id=registration.patient.id,
        ),
        at=now,
    )
    return registration


def register_patient_once(
    database: Database,
    caller: Caller,
    data: Any,
    conditional_nhs_number: str | None,
    now: datetime,
) -> Registration:
    """`register_patient` in a transaction of its own, tried a second time if a concurrent
    first registration of the same NHS number committed under it (the NHS number is
    unique: the loser's insert fails, and on the retry it finds the patient and answers as
    a repeat registration would)."""
    try:
        with database.transaction() as session:
            return register_patient(session, caller, data, conditional_nhs_number, now)
    except IntegrityError:
        pass  # rolled back; the patient it collided with is committed now
    with database.transaction() as session:
        return register_patient(session, caller, data, conditional_nhs_number, now)


def read_patient(
    session: Session, caller: Caller, patient_id: uuid.UUID, now: datetime
) -> dict[str, Any]:
    """The Patient as the caller sees it (404 for a caller with no relationship)."""
    patient = _visible(session, caller, patient_id)
    record(
        session,
        caller.audit_entry(AuditKind.READ, entities=_entities(patient.id), patient_id=patient.id),
        at=now,
    )
    return view_of(session, patient, caller.organisation_id).resource


def read_patient_version(
    session: Session, caller: Caller, patient_id: uuid.UUID, version: int | None, now: datetime
) -> dict[str, Any]:
    """One version of the caller's view of a Patient."""
    patient = _visible(session, caller, patient_id)
    view = view_of(session, patient, caller.organisation_id)
    stored = read_version(session, "Patient", view.id, version)
    if stored is None:
        raise NotFound("Patient", f"{patient_id}/_history/{version}")
    record(
        session,
        caller.audit_entry(AuditKind.VREAD, entities=_entities(patient.id), patient_id=patient.id),
        at=now,
    )
    return view_version(view, stored)


def patient_history(
    session: Session, caller: Caller, patient_id: uuid.UUID, now: datetime
) -> list[dict[str, Any]]:
    """Every version of the caller's view of a Patient, newest first."""
    patient = _visible(session, caller, patient_id)
    view = view_of(session, patient, caller.organisation_id)
    record(
        session,
        caller.audit_entry(
            AuditKind.HISTORY, entities=_entities(patient.id), patient_id=patient.id
        ),
        at=now,
    )
    return [view_version(view, stored) for stored in all_versions(session, "Patient", view.id)]


def search_patients(
    session: Session, caller: Caller, nhs_number: str, query: str | None, now: datetime
) -> list[dict[str, Any]]:
    """The Patient with this NHS number, if the caller may see it (else none)."""
    patient = session.scalars(
        select(Patient)
        .join(PatientAccess, PatientAccess.patient_id == Patient.id)
        .where(
            Patient.nhs_number == nhs_number,
            PatientAccess.organisation_id == caller.organisation_id,
        )
        .limit(1)
    ).first()
    record(
        session,
        caller.audit_entry(
            AuditKind.SEARCH,
            entities=_entities(patient.id) if patient else (),
            patient_id=patient.id if patient else None,
            query=query,
        ),
        at=now,
    )
    return (
        [view_of(session, patient, caller.organisation_id).resource] if patient is not None else []
    )


def update_patient(
    session: Session,
    caller: Caller,
    patient_id: uuid.UUID,
    data: Any,
    if_match: str | None,
    now: datetime,
) -> dict[str, Any]:
    """The first registrant updates the Patient; the NHS number cannot change, and a
    birth-date correction is audited with both dates and flagged for IG review."""
    patient = _visible(session, caller, patient_id)
    check_version(view_of(session, patient, caller.organisation_id).version, if_match)
    resource = _valid_patient(data, now)
    if resource.get("id") not in (None, str(patient_id)):
        raise invalid("Patient.id", "the resource id does not match the URL", "invariant")
    if nhs_number_of(resource) != patient.nhs_number:
        raise invalid("Patient.identifier", "the NHS number of a Patient cannot change")
    updated = update(session, patient, caller.organisation_id, resource, now)
    correction = updated.correction
    details = (
        {
            "birth-date-before": correction.old.isoformat(),
            "birth-date-after": correction.new.isoformat(),
        }
        if correction
        else {}
    )
    record(
        session,
        caller.audit_entry(
            AuditKind.UPDATE,
            entities=_entities(patient.id),
            patient_id=patient.id,
            details=details,
            review_reason=ReviewReason.BIRTH_DATE_CORRECTION if correction else None,
        ),
        at=now,
    )
    return updated.view.resource
