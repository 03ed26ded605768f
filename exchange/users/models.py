"""Console users (one organisation each, roles, an argon2id password hash and a TOTP secret)
and their sessions, kept server-side so that a logout or a disabled user ends them at once."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column, relationship

from exchange.agreements.models import Organisation
from exchange.db import Base, JsonDocument, UTCDateTime


class ConsoleUser(Base):
    """A person who signs in to the console; only an argon2id hash of the password is kept."""

    __tablename__ = "console_user"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    username: Mapped[str] = mapped_column(String(256), unique=True)
    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisation.id"), index=True)
    roles: Mapped[list[str]] = mapped_column(JsonDocument)
    password_hash: Mapped[str] = mapped_column(String(512))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=True)
    totp_secret: Mapped[str | None] = mapped_column(String(1024))  # sealed (crypto.sealed)
    #: The last TOTP time step accepted: a code is good once (RFC 6238 s.5.2).
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created: Mapped[datetime] = mapped_column(UTCDateTime)
    updated: Mapped[datetime] = mapped_column(UTCDateTime)

    organisation: Mapped[Organisation] = relationship(lazy="joined")


class ConsoleSession(Base):
    """A console session: the cookie carries a random token, the table only its SHA-256.

    `stage` says how far the sign-in got: `password` (the second factor is still due),
    `change-password` and `enrol-totp` (first sign-in), then `active`. Each step to the
    next stage replaces the session by a new one (a new token), so a token an attacker
    planted before sign-in never becomes a signed-in session (session fixation).
    """

    __tablename__ = "console_session"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("console_user.id"), index=True)
    stage: Mapped[str] = mapped_column(String(16))
    #: A TOTP secret shown for enrolment, kept until the user confirms a code from it.
    pending_totp_secret: Mapped[str | None] = mapped_column(String(1024))  # sealed
    created: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime)
    ended: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[ConsoleUser] = relationship(lazy="joined")
