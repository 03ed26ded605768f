"""Patient use cases: registration (one Patient per NHS number, registrants added without
revealing earlier ones), visibility, reads and updates (`access.md`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

from sqlalchemy import exists, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from exchange.fhir.terminology import NHS_NUMBER_SYSTEM
from exchange.patients.models import Patient, PatientAccess
from exchange.resources.service import keep_version, stamp

REGISTRANT: Final = "registrant"


class BirthDateConflict(ValueError):
    """The NHS number is registered with a different birth date (409)."""


@dataclass(frozen=True, slots=True)
class Registration:
    """The outcome of registering a Patient: the stored patient and whether this was the
    organisation's first registration of that NHS number (201) or a repeat (200)."""

    patient: Patient
    first_for_organisation: bool


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


def grant_access(session: Session, patient_id: uuid.UUID, organisation_id: uuid.UUID, relationship: str, now: datetime) -> bool:
    """Relate an organisation to a patient; True if the relationship is new. Concurrent
    grants of the same relationship are harmless (the insert ignores a duplicate)."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    inserted = session.execute(
        insert(PatientAccess)
        .values(patient_id=patient_id, organisation_id=organisation_id, relationship=relationship, since=now)
        .on_conflict_do_nothing()
        .returning(PatientAccess.patient_id)
    ).first()
    return inserted is not None


def can_see(session: Session, patient_id: uuid.UUID, organisation_id: uuid.UUID) -> bool:
    """Whether the organisation has any relationship to the patient."""
    return bool(
        session.scalar(
            select(
                exists().where(PatientAccess.patient_id == patient_id, PatientAccess.organisation_id == organisation_id)
            )
        )
    )


def visible_patient(session: Session, patient_id: uuid.UUID, organisation_id: uuid.UUID) -> Patient | None:
    """The patient if the organisation may see them; None either way otherwise, so a caller
    with no relationship cannot tell whether the patient exists."""
    patient = session.get(Patient, patient_id)
    if patient is None or not can_see(session, patient_id, organisation_id):
        return None
    return patient


def register(session: Session, resource: dict[str, Any], organisation_id: uuid.UUID, now: datetime) -> Registration:
    """Register a (validated) Patient for an organisation.

    A new NHS number creates the Patient. A known one makes the organisation a registrant
    without revealing who else registered it; the stored Patient is kept as it is. A birth
    date that contradicts the stored one raises BirthDateConflict.
    """
    nhs_number = nhs_number_of(resource)
    if nhs_number is None:
        raise ValueError("a Patient needs an NHS number")
    birth_date = date.fromisoformat(resource["birthDate"])
    patient = find_by_nhs_number(session, nhs_number)
    if patient is None:
        patient_id = uuid.uuid4()
        stored = stamp(resource, patient_id, 1, now)
        patient = Patient(
            id=patient_id, nhs_number=nhs_number, birth_date=birth_date, version=1, last_updated=now, resource=stored
        )
        session.add(patient)
        session.flush()  # a concurrent first registration fails here, on the unique key
        keep_version(session, stored, now)
    elif patient.birth_date != birth_date:
        raise BirthDateConflict("the NHS number is registered with a different birth date")
    first = grant_access(session, patient.id, organisation_id, REGISTRANT, now)
    return Registration(patient, first)


def update(session: Session, patient: Patient, resource: dict[str, Any], now: datetime) -> Patient:
    """Store a new version of a Patient (the NHS number cannot change: checked by the caller)."""
    patient.version += 1
    stored = stamp(resource, patient.id, patient.version, now)
    patient.resource = stored
    patient.birth_date = date.fromisoformat(resource["birthDate"])
    patient.last_updated = now
    keep_version(session, stored, now)
    return patient
