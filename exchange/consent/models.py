"""The Consent table: the current version of each Consent, with what searches and the
decision need; every version is also in `resource_version`."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Uuid, false
from sqlalchemy.orm import Mapped, mapped_column

from exchange.db import Base, JsonDocument, UTCDateTime


class ConsentRow(Base):
    """A recorded consent decision."""

    __tablename__ = "consent"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patient.id"))
    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisation.id"))
    status: Mapped[str] = mapped_column(String(32))
    date_time: Mapped[datetime] = mapped_column(UTCDateTime)
    maker_valid: Mapped[bool] = mapped_column(Boolean)
    #: Reverses another organisation's latest decision for a purpose (`consent-review#contested`).
    contested: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    version: Mapped[int] = mapped_column(Integer)
    last_updated: Mapped[datetime] = mapped_column(UTCDateTime)
    resource: Mapped[dict[str, Any]] = mapped_column(JsonDocument)

    __table_args__ = (Index("ix_consent_patient_id_date_time", "patient_id", "date_time"),)
