"""Task tables: the current version of each advice request, and its parties."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import Boolean, Date, ForeignKey, Index, Integer, String, Uuid, false
from sqlalchemy.orm import Mapped, mapped_column

from exchange.db import Base, JsonDocument, UTCDateTime


class TaskRow(Base):
    """An advice request."""

    __tablename__ = "task"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patient.id"), index=True)
    requester_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisation.id"))
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisation.id"))
    task_type: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(32))
    authored_on: Mapped[datetime] = mapped_column(UTCDateTime)
    received_on: Mapped[date] = mapped_column(Date)
    due_date: Mapped[date] = mapped_column(Date)
    completed_on: Mapped[date | None] = mapped_column(Date)
    #: The London day the request was closed (completed, rejected or cancelled).
    closed_on: Mapped[date | None] = mapped_column(Date)
    #: Why its status is what it is (`task-status-reason`), as the report counts it.
    status_reason: Mapped[str | None] = mapped_column(String(32))
    #: Whether it was ever forwarded to another owner.
    forwarded: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    clock_exception: Mapped[bool] = mapped_column(Boolean, default=False)
    version: Mapped[int] = mapped_column(Integer)
    last_updated: Mapped[datetime] = mapped_column(UTCDateTime)
    resource: Mapped[dict[str, Any]] = mapped_column(JsonDocument)

    __table_args__ = (
        Index("ix_task_owner_id_status_due_date", "owner_id", "status", "due_date"),
        Index("ix_task_requester_id_status_due_date", "requester_id", "status", "due_date"),
        Index("ix_task_status_due_date", "status", "due_date"),
        Index("ix_task_received_on", "received_on"),
        Index("ix_task_due_date", "due_date"),
        # A work list counted, and paged newest first, from the index alone.
        Index("ix_task_owner_id_status_authored_on_id", "owner_id", "status", "authored_on", "id"),
    )


class TaskParty(Base):
    """An organisation's part in a Task: requester, owner, or a previous owner (who keeps
    read access after forwarding: `advice-requests.md`)."""

    __tablename__ = "task_party"

    task_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("task.id"), primary_key=True)
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisation.id"), primary_key=True
    )
    role: Mapped[str] = mapped_column(String(16), primary_key=True)

    __table_args__ = (
        # The Tasks an organisation takes part in, by role, read from the index alone (the
        # read decision's relationship check: `documents.access.related_to`).
        Index("ix_task_party_organisation_id_role_task_id", "organisation_id", "role", "task_id"),
    )
