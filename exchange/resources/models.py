"""The version history shared by every resource type (vread, `_history`)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from exchange.db import Base, JsonDocument, UTCDateTime


class ResourceVersion(Base):
    """One version of one resource, as it was served."""

    __tablename__ = "resource_version"

    resource_type: Mapped[str] = mapped_column(String(64), primary_key=True)
    resource_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_updated: Mapped[datetime] = mapped_column(UTCDateTime)
    resource: Mapped[dict[str, Any]] = mapped_column(JsonDocument)
