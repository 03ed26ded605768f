"""The Binary table: one encrypted object, its wrapped data key and its digests."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, LargeBinary, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from exchange.db import Base, JsonDocument, UTCDateTime


class BinaryRow(Base):
    """Document content: ciphertext in the blob store under `blob_name`, readable only
    with the data key, which is kept wrapped. Destroying the key crypto-shreds it."""

    __tablename__ = "binary"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    blob_name: Mapped[str] = mapped_column(String(32), unique=True)
    content_type: Mapped[str] = mapped_column(String(128))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    sha1: Mapped[bytes] = mapped_column(LargeBinary(20))
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    key_ref: Mapped[str] = mapped_column(String(512))
    uploader_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisation.id"), index=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    document_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    destroyed: Mapped[datetime | None] = mapped_column(UTCDateTime)


class DocumentRow(Base):
    """A health-advice document's metadata (the current DocumentReference version)."""

    __tablename__ = "document_reference"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patient.id"), index=True)
    custodian_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisation.id"), index=True)
    task_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("task.id"), index=True)
    binary_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("binary.id"))
    doc_type: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32))
    date: Mapped[datetime] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(BigInteger)
    last_updated: Mapped[datetime] = mapped_column(UTCDateTime)
    resource: Mapped[dict[str, Any]] = mapped_column(JsonDocument)
