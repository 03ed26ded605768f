"""Audit tables. Rows are inserted unsealed inside the business transaction and sealed
(chain position and hash) by the sealer in commit order; database triggers allow nothing
else — no update but the one-time seal, no delete, no truncate.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, String, Text, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from exchange.db import Base, BigIntKey, UTCDateTime


class AuditRecord(Base):
    """One AuditEvent. `payload` is its canonical JSON (without the chain extension),
    the bytes the hash covers; the other columns are copies of it for searching."""

    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    recorded: Mapped[datetime] = mapped_column(UTCDateTime)
    sequence: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    previous_hash: Mapped[str | None] = mapped_column(String(64))
    hash: Mapped[str | None] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(1))
    outcome: Mapped[str] = mapped_column(String(2))
    agent_client_id: Mapped[str | None] = mapped_column(String(128))
    agent_user: Mapped[str | None] = mapped_column(String(256))
    agent_org: Mapped[str | None] = mapped_column(String(32))
    custodian_org: Mapped[str | None] = mapped_column(String(32))
    patient_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    purpose: Mapped[str | None] = mapped_column(String(64))
    break_glass: Mapped[bool] = mapped_column(Boolean, default=False)
    request_id: Mapped[str | None] = mapped_column(String(64))
    #: Why the event needs an IG lead's review (`review-reason`): break-glass,
    #: contested-consent, birth-date-correction; None for the rest.
    review_reason: Mapped[str | None] = mapped_column(String(32))

    entity_refs: Mapped[list[AuditEntityRef]] = relationship(lazy="raise", cascade="save-update")

    __table_args__ = (
        Index("ix_audit_event_recorded", "recorded"),
        Index("ix_audit_event_agent_org_recorded", "agent_org", "recorded"),
        Index("ix_audit_event_custodian_org_recorded", "custodian_org", "recorded"),
        Index("ix_audit_event_patient_id_recorded", "patient_id", "recorded"),
        Index(
            "ix_audit_event_review_reason",
            "review_reason",
            "recorded",
            postgresql_where=text("review_reason IS NOT NULL"),
            sqlite_where=text("review_reason IS NOT NULL"),
        ),
        Index(
            "ix_audit_event_unsealed",
            "id",
            postgresql_where=text("sequence IS NULL"),
            sqlite_where=text("sequence IS NULL"),
        ),
    )


class AuditEntityRef(Base):
    """An index of the resources each record names (`entity` search); the payload, which
    the chain protects, remains the record."""

    __tablename__ = "audit_event_entity"

    audit_id: Mapped[int] = mapped_column(ForeignKey("audit_event.id"), primary_key=True)
    reference: Mapped[str] = mapped_column(String(160), primary_key=True)

    __table_args__ = (Index("ix_audit_event_entity_reference", "reference", "audit_id"),)


class AuditCheckpoint(Base):
    """A signed statement of the chain head at a time (`audit.md`, Checkpoints)."""

    __tablename__ = "audit_checkpoint"

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    sequence: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
    created: Mapped[datetime] = mapped_column(UTCDateTime)
    key_id: Mapped[str] = mapped_column(String(256))
    algorithm: Mapped[str] = mapped_column(String(32))
    signature: Mapped[str] = mapped_column(Text)


class AuditVerification(Base):
    """One run of the chain verification started from the console ("verify now"): it runs
    in the background and writes its progress here, so any worker can show it."""

    __tablename__ = "audit_verification"

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    started: Mapped[datetime] = mapped_column(UTCDateTime)
    started_by: Mapped[str] = mapped_column(String(256))
    #: running, passed, failed (the chain or a checkpoint is broken) or error (the run died).
    status: Mapped[str] = mapped_column(String(16))
    total: Mapped[int] = mapped_column(BigInteger, default=0)
    checked: Mapped[int] = mapped_column(BigInteger, default=0)
    #: When the run last wrote its progress: a running run silent for long has died.
    heartbeat: Mapped[datetime] = mapped_column(UTCDateTime)
    finished: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_sequence: Mapped[int | None] = mapped_column(BigInteger)
    broken_sequence: Mapped[int | None] = mapped_column(BigInteger)
    problem: Mapped[str | None] = mapped_column(Text)
