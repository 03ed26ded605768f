"""Reviews of flagged audit events. The audit trail is append-only, so a review is a row of
its own naming the event; each organisation reviews for itself (an event can be in the
queues of both the acting organisation and the document's custodian)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from exchange.db import Base, UTCDateTime


class AuditReview(Base):
    """An IG lead's review of one flagged audit event, for their organisation."""

    __tablename__ = "audit_review"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("audit_event.event_id"))
    #: ODS code of the organisation the review was made for.
    organisation: Mapped[str] = mapped_column(String(32))
    reviewer: Mapped[str] = mapped_column(String(256))
    note: Mapped[str] = mapped_column(Text)
    reviewed: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (UniqueConstraint("event_id", "organisation"),)
