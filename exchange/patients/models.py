"""Patient tables: the current Patient, and the organisations related to each patient."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import Boolean, Date, ForeignKey, Integer, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from exchange.db import Base, JsonDocument, UTCDateTime


class Patient(Base):
    """A child or young person, one per NHS number: the identity every registrant shares
    (the birth date decides who may consent, so there is one)."""

    __tablename__ = "patient"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    nhs_number: Mapped[str] = mapped_column(String(10), unique=True)
    birth_date: Mapped[date] = mapped_column(Date)


class PatientRegistration(Base):
    """One organisation's registration of a patient: the Patient resource as that
    organisation gave it (NHS number, birth date, its own name and gender), versioned on its
    own, so no registrant sees another's details or counts another's changes (`access.md`).

    The first registrant's registration has the patient's id; only it may update the
    Patient, and organisations that see the patient without registering it (Task parties,
    custodians) are shown it.
    """

    __tablename__ = "patient_registration"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patient.id"))
    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisation.id"))
    first: Mapped[bool] = mapped_column(Boolean)
    version: Mapped[int] = mapped_column(Integer)
    last_updated: Mapped[datetime] = mapped_column(UTCDateTime)
    resource: Mapped[dict[str, Any]] = mapped_column(JsonDocument)

    __table_args__ = (UniqueConstraint("patient_id", "organisation_id"),)


class PatientAccess(Base):
    """An organisation's relationship to a patient (`access.md`, "see a Patient"): it
    registered them, or is or was requester or owner of a Task, or custodian of a
    DocumentReference, for them. Relationships are never removed: past owners keep seeing."""

    __tablename__ = "patient_access"

    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patient.id"), primary_key=True)
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisation.id"), primary_key=True, index=True
    )
    relationship: Mapped[str] = mapped_column(String(32), primary_key=True)
    since: Mapped[datetime] = mapped_column(UTCDateTime)
