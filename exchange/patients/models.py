"""Patient tables: the current Patient, and the organisations related to each patient."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, ForeignKey, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from exchange.db import Base, JsonDocument, UTCDateTime


class Patient(Base):
    """A child or young person, one per NHS number."""

    __tablename__ = "patient"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    nhs_number: Mapped[str] = mapped_column(String(10), unique=True)
    birth_date: Mapped[date] = mapped_column(Date)
    version: Mapped[int] = mapped_column(Integer)
    last_updated: Mapped[datetime] = mapped_column(UTCDateTime)
    resource: Mapped[dict[str, Any]] = mapped_column(JsonDocument)


class PatientAccess(Base):
    """An organisation's relationship to a patient (`access.md`, "see a Patient"): it
    registered them, or is or was requester or owner of a Task, or custodian of a
    DocumentReference, for them. Relationships are never removed: past owners keep seeing."""

    __tablename__ = "patient_access"

    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patient.id"), primary_key=True)
    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisation.id"), primary_key=True, index=True)
    relationship: Mapped[str] = mapped_column(String(32), primary_key=True)
    since: Mapped[datetime] = mapped_column(UTCDateTime)
