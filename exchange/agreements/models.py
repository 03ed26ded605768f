"""Organisations (by ODS code, with their role) and the data-sharing agreements between them."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import Boolean, CheckConstraint, Date, ForeignKey, Integer, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column, relationship

from exchange.db import Base, UTCDateTime


class Organisation(Base):
    """An organisation by its ODS code, with one role: provider, icb or la."""

    __tablename__ = "organisation"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    ods: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16))
    commissioner_ods: Mapped[str | None] = mapped_column(String(32))
    break_glass: Mapped[bool] = mapped_column(Boolean, default=False)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created: Mapped[datetime] = mapped_column(UTCDateTime)
    updated: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (CheckConstraint("role IN ('provider', 'icb', 'la')", name="role"),)


class Agreement(Base):
    """A data-sharing agreement between two or more organisations, for some purposes."""

    __tablename__ = "agreement"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    agreement_id: Mapped[str] = mapped_column(String(128), unique=True)
    title: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    start: Mapped[date] = mapped_column(Date)
    end: Mapped[date | None] = mapped_column(Date)
    registered_by: Mapped[str] = mapped_column(String(256))
    version: Mapped[int] = mapped_column(Integer, default=1)
    created: Mapped[datetime] = mapped_column(UTCDateTime)
    updated: Mapped[datetime] = mapped_column(UTCDateTime)

    parties: Mapped[list[AgreementParty]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="AgreementParty.position"
    )
    purposes: Mapped[list[AgreementPurpose]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="AgreementPurpose.purpose"
    )

    __table_args__ = (
        CheckConstraint("status IN ('executed', 'terminated', 'revoked')", name="status"),
    )

    @property
    def party_ods(self) -> list[str]:
        """The parties' ODS codes, in registration order."""
        return [party.organisation.ods for party in self.parties]

    @property
    def purpose_codes(self) -> list[str]:
        """The purposes covered, sorted."""
        return [purpose.purpose for purpose in self.purposes]


class AgreementParty(Base):
    """One party (signer) of an agreement."""

    __tablename__ = "agreement_party"

    agreement_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("agreement.id", ondelete="CASCADE"), primary_key=True
    )
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisation.id"), primary_key=True, index=True
    )
    position: Mapped[int] = mapped_column(Integer)

    organisation: Mapped[Organisation] = relationship(lazy="joined")


class AgreementPurpose(Base):
    """One purpose an agreement covers."""

    __tablename__ = "agreement_purpose"

    agreement_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("agreement.id", ondelete="CASCADE"), primary_key=True
    )
    purpose: Mapped[str] = mapped_column(String(64), primary_key=True)
