"""OAuth tables: issued access tokens (hashed), used client-assertion `jti`s, and the
windows that aggregate repeated identical token failures."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Integer, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column, relationship

from exchange.agreements.models import Organisation
from exchange.db import Base, JsonDocument, UTCDateTime


class Client(Base):
    """An OAuth client of one organisation: its allowed scopes and its public keys."""

    __tablename__ = "client"

    client_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisation.id"), index=True)
    scopes: Mapped[list[str]] = mapped_column(JsonDocument)
    jwks: Mapped[dict[str, Any] | None] = mapped_column(JsonDocument)
    jwks_uri: Mapped[str | None] = mapped_column(String(2048))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime)
    updated: Mapped[datetime] = mapped_column(UTCDateTime)

    organisation: Mapped[Organisation] = relationship(lazy="joined")

    __table_args__ = (
        CheckConstraint("(jwks IS NULL) <> (jwks_uri IS NULL)", name="one_key_source"),
    )


class AccessToken(Base):
    """An opaque access token. Only its SHA-256 is stored: a database leak yields no
    usable token. `jti` ties audit records to the token (and the assertion behind it)."""

    __tablename__ = "access_token"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    jti: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("client.client_id"), index=True)
    scope: Mapped[str] = mapped_column(Text)
    assertion_jti: Mapped[str] = mapped_column(String(256))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ClientAssertionJti(Base):
    """A client assertion's `jti`, kept until the assertion expires. The primary key makes
    a replay fail in the database, whichever process or host sees it second."""

    __tablename__ = "client_assertion_jti"

    client_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    jti: Mapped[str] = mapped_column(String(256), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class AuthFailureWindow(Base):
    """Identical token failures from one source within a minute: the first is audited at
    once, the rest are counted here and audited as one event with the count."""

    __tablename__ = "auth_failure_window"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    source: Mapped[str] = mapped_column(String(64))
    claimed_client: Mapped[str | None] = mapped_column(String(128))
    error: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(256))
    window_start: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    suppressed: Mapped[int] = mapped_column(Integer, default=0)
