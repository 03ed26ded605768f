"""Console sign-in use cases: password (argon2id), then a TOTP code; at first sign-in a new
password and TOTP enrolment; server-side sessions with an idle timeout; sign-out.

Every step that fails is audited (`console:login-failed`, with why) and counts towards the
lock-out, and the failure commits: the use cases return a refusal rather than raise, so
the count and its audit record are not rolled back with the refused request. A signed-in
session gets a new token at every step (session fixation), and only a SHA-256 of a token
is stored, so a copy of the table opens no session.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cache
from typing import Final

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from exchange.audit.events import Action, Actor, AuditEntry, AuditKind, Outcome
from exchange.audit.service import record
from exchange.crypto.keyring import KeyringError
from exchange.crypto.keys import KeyProvider, KeyServiceUnavailable, LocalKeyProvider
from exchange.crypto.sealed import (
    SealedValueError,
    is_sealed,
    open_sealed,
    rewrap_sealed,
    seal,
    sealed_key_ref,
)
from exchange.errors import Invalid, Issue, Unavailable
from exchange.users import totp
from exchange.users.models import ConsoleSession, ConsoleUser
from exchange.users.passwords import MIN_PASSWORD_LENGTH, hash_password, verify_password

log = logging.getLogger(__name__)

#: A signed-in session ends after this long without a request (NHS DSPT-style idle lock).
IDLE_TIMEOUT: Final = timedelta(minutes=15)
#: ...and after this long in any case: a working day, then sign in again.
SESSION_LIFETIME: Final = timedelta(hours=10)
#: A sign-in left half-way (password given, code not yet) is forgotten after this.
SIGN_IN_LIFETIME: Final = timedelta(minutes=10)
#: Consecutive failed steps (password or code) that lock an account...
MAX_FAILURES: Final = 5
#: ...and for how long.
LOCKOUT: Final = timedelta(minutes=15)
MAX_PASSWORD_LENGTH: Final = 1024


@cache
def _dummy_hash() -> str:
    """A hash verified when the username is unknown (or disabled), so that answer takes as
    long as a wrong password: no user enumeration by timing."""
    return hash_password(secrets.token_hex(16))


class Stage(StrEnum):
    """How far a sign-in has got."""

    PASSWORD = "password"  # noqa: S105 - a stage name, not a secret
    CHANGE_PASSWORD = "change-password"  # noqa: S105 - a stage name, not a secret
    ENROL_TOTP = "enrol-totp"
    ACTIVE = "active"


@dataclass(frozen=True, slots=True)
class Proceed:
    """A step succeeded: the new session token (for the cookie) and the stage it is at."""

    token: str
    stage: Stage


@dataclass(frozen=True, slots=True)
class Refused:
    """A step failed: why (for the audit trail), and whether the account is now locked.
    The person is told neither which part was wrong nor whether the user exists."""

    reason: str
    locked: bool = False


@dataclass(frozen=True, slots=True)
class Identity:
    """The person behind a console session, with their organisation."""

    user_id: uuid.UUID
    username: str
    roles: tuple[str, ...]
    organisation_id: uuid.UUID
    organisation: str
    organisation_name: str
    organisation_role: str
    break_glass_allowed: bool
    stage: Stage

    def actor(self, address: str | None) -> Actor:
        """How the audit trail names this person."""
        return Actor(user=self.username, organisation=self.organisation, address=address)


@dataclass(frozen=True, slots=True)
class Enrolment:
    """What a person needs to add the console to an authenticator app."""

    secret: str
    uri: str


def token_hash(token: str) -> str:
    """The stored form of a session token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _new_session(session: Session, user: ConsoleUser, stage: Stage, now: datetime) -> Proceed:
    token = secrets.token_urlsafe(32)
    session.add(
        ConsoleSession(
            token_hash=token_hash(token),
            user_id=user.id,
            stage=stage.value,
            created=now,
            last_seen=now,
        )
    )
    return Proceed(token, stage)


def _audit(
    session: Session,
    kind: AuditKind,
    actor: Actor,
    now: datetime,
    request_id: str | None,
    outcome: Outcome = Outcome.SUCCESS,
    reason: str | None = None,
    details: dict[str, str] | None = None,
) -> None:
    record(
        session,
        AuditEntry(
            kind=kind,
            action=Action.EXECUTE,
            outcome=outcome,
            actor=actor,
            outcome_desc=reason,
            details=details or {},
            request_id=request_id,
        ),
        at=now,
    )


def _actor(user: ConsoleUser, address: str | None) -> Actor:
    return Actor(user=user.username, organisation=user.organisation.ods, address=address)


def _failed(
    session: Session,
    user: ConsoleUser,
    reason: str,
    address: str | None,
    request_id: str | None,
    now: datetime,
) -> Refused:
    """Count a failed step; the fifth in a row locks the account for LOCKOUT."""
    user.failed_logins += 1
    locked = user.failed_logins >= MAX_FAILURES
    details = {"failures": str(user.failed_logins)}
    if locked:
        user.locked_until = now + LOCKOUT
        user.failed_logins = 0
        details["locked-until"] = user.locked_until.isoformat()
        _end_sessions(session, user.id, now)
    user.updated = now
    _audit(
        session,
        AuditKind.LOGIN_FAILED,
        _actor(user, address),
        now,
        request_id,
        Outcome.MINOR_FAILURE,
        f"{reason}; locked" if locked else reason,
        details,
    )
    return Refused(reason, locked)


def _end_sessions(session: Session, user_id: uuid.UUID, now: datetime) -> None:
    session.execute(
        update(ConsoleSession)
        .where(ConsoleSession.user_id == user_id, ConsoleSession.ended.is_(None))
        .values(ended=now)
    )


def _next_stage(user: ConsoleUser) -> Stage:
    if user.must_change_password:
        return Stage.CHANGE_PASSWORD
    if user.totp_secret is None:
        return Stage.ENROL_TOTP
    return Stage.PASSWORD


def sign_in(
    session: Session,
    username: str,
    password: str,
    address: str | None,
    request_id: str | None,
    now: datetime,
) -> Proceed | Refused:
    """The first step: username and password. A locked or disabled account is refused
    without looking at the password; an unknown username is audited without the name typed
    (people type passwords into the username box)."""
    user = session.scalar(select(ConsoleUser).where(ConsoleUser.username == username))
    if user is None:
        verify_password(_dummy_hash(), password)
        _audit(
            session,
            AuditKind.LOGIN_FAILED,
            Actor(address=address),
            now,
            request_id,
            Outcome.MINOR_FAILURE,
            "unknown-user",
        )
        return Refused("unknown-user")
    if not user.enabled:
        verify_password(_dummy_hash(), password)
        _audit(
            session,
            AuditKind.LOGIN_FAILED,
            _actor(user, address),
            now,
            request_id,
            Outcome.MINOR_FAILURE,
            "disabled",
        )
        return Refused("disabled")
    if user.locked_until is not None and user.locked_until > now:
        _audit(
            session,
            AuditKind.LOGIN_FAILED,
            _actor(user, address),
            now,
            request_id,
            Outcome.MINOR_FAILURE,
            "locked",
        )
        return Refused("locked", locked=True)
    if len(password) > MAX_PASSWORD_LENGTH or not verify_password(user.password_hash, password):
        return _failed(session, user, "wrong-password", address, request_id, now)
    return _new_session(session, user, _next_stage(user), now)


def _pending(session: Session, token: str, stage: Stage, now: datetime) -> ConsoleSession | None:
    """The half-way sign-in session at `stage`, if it is still current."""
    # Lock the session row only (its user and organisation are joined in, outer).
    row = session.get(ConsoleSession, token_hash(token), with_for_update={"of": ConsoleSession})
    if (
        row is None
        or row.ended is not None
        or row.stage != stage.value
        or now - row.created > SIGN_IN_LIFETIME
        or not row.user.enabled
    ):
        return None
    return row


def _signed_in(
    session: Session,
    row: ConsoleSession,
    step: int,
    address: str | None,
    request_id: str | None,
    now: datetime,
    details: dict[str, str] | None = None,
) -> Proceed:
    """The second factor checked: a new active session replaces the half-way one."""
    user = row.user
    user.totp_last_step = step
    user.failed_logins = 0
    user.locked_until = None
    user.updated = now
    row.ended = now
    _audit(session, AuditKind.LOGIN, _actor(user, address), now, request_id, details=details)
    return _new_session(session, user, Stage.ACTIVE, now)


#: A sign-in step that checks a code from an authenticator app (`verify_code`,
#: `confirm_enrolment`), as the console's front door submits it.
CodeCheck = Callable[
    [Session, KeyProvider, str, str, str | None, str | None, datetime], Proceed | Refused
]


def _user_context(user: ConsoleUser) -> str:
    return f"console-user/{user.id}/totp"


def _sign_in_context(row: ConsoleSession) -> str:
    return f"console-sign-in/{row.token_hash}/totp"


@contextmanager
def _key_service() -> Iterator[None]:
    """A key provider that cannot answer (its service down, the local keyring unreadable)
    refuses the sign-in step (503), with nothing changed."""
    try:
        yield
    except (KeyServiceUnavailable, KeyringError):
        raise Unavailable("the key service is unavailable; nothing was changed") from None


def _opened(keys: KeyProvider, stored: str, context: str) -> str | None:
    """A stored TOTP secret in plain: sealed (`crypto.sealed`), or a value enrolled before
    secrets were sealed. A sealed value that does not open for its row (altered, copied
    from another row, or its KEK gone) is None: no code matches it, and the operators are
    told."""
    if not is_sealed(stored):
        return stored
    try:
        with _key_service():
            return open_sealed(keys, stored, context)
    except SealedValueError:
        log.error("a stored TOTP secret does not open for its row", extra={"context": "totp"})
        return None


def _sealed(keys: KeyProvider, secret: str, context: str) -> str:
    with _key_service():
        return seal(keys, secret, context)


def verify_code(
    session: Session,
    keys: KeyProvider,
    token: str,
    code: str,
    address: str | None,
    request_id: str | None,
    now: datetime,
) -> Proceed | Refused:
    """The second step: a TOTP code from the person's authenticator app."""
    row = _pending(session, token, Stage.PASSWORD, now)
    if row is None:
        return Refused("no-sign-in")
    user = row.user
    if user.locked_until is not None and user.locked_until > now:
        row.ended = now
        return Refused("locked", locked=True)
    secret = user.totp_secret and _opened(keys, user.totp_secret, _user_context(user))
    step = totp.matching_step(secret, code, now, user.totp_last_step) if secret else None
    if step is None:
        reason = "unreadable-secret" if user.totp_secret and not secret else "wrong-code"
        refused = _failed(session, user, reason, address, request_id, now)
        if refused.locked:
            row.ended = now
        return refused
    if secret and not is_sealed(user.totp_secret or ""):
        user.totp_secret = _sealed(keys, secret, _user_context(user))
    return _signed_in(session, row, step, address, request_id, now)


def change_password(
    session: Session,
    token: str,
    new_password: str,
    confirmation: str,
    address: str | None,
    request_id: str | None,
    now: datetime,
) -> Proceed | Refused:
    """First sign-in (or after a reset): choose a new password; Invalid names what is
    wrong with it (at `new-password` or `confirm-password`)."""
    row = _pending(session, token, Stage.CHANGE_PASSWORD, now)
    if row is None:
        return Refused("no-sign-in")
    user = row.user
    issues = []
    if len(new_password) < MIN_PASSWORD_LENGTH:
        issues.append(f"Enter a password of at least {MIN_PASSWORD_LENGTH} characters")
    elif len(new_password) > MAX_PASSWORD_LENGTH:
        issues.append(f"Enter a password of at most {MAX_PASSWORD_LENGTH} characters")
    elif verify_password(user.password_hash, new_password):
        issues.append("Enter a password different from the one you were given")
    if issues:
        raise Invalid([Issue("error", "value", issues[0], ("new-password",))])
    if new_password != confirmation:
        raise Invalid(
            [
                Issue(
                    "error",
                    "value",
                    "The passwords you entered do not match",
                    ("confirm-password",),
                )
            ]
        )
    user.password_hash = hash_password(new_password)
    user.must_change_password = False
    user.updated = now
    row.ended = now
    _audit(
        session,
        AuditKind.REGISTRY_CHANGE,
        _actor(user, address),
        now,
        request_id,
        details={"changes": f"user {user.username}: updated (password, by the user)"},
    )
    return _new_session(session, user, _next_stage(user), now)


def enrolment(session: Session, keys: KeyProvider, token: str, now: datetime) -> Enrolment | None:
    """The TOTP secret to enrol (made once per sign-in and kept, sealed, until confirmed)."""
    row = _pending(session, token, Stage.ENROL_TOTP, now)
    if row is None:
        return None
    if row.pending_totp_secret is None:
        secret = totp.new_secret()
        row.pending_totp_secret = _sealed(keys, secret, _sign_in_context(row))
    else:
        opened = _opened(keys, row.pending_totp_secret, _sign_in_context(row))
        if opened is None:
            return None
        secret = opened
    return Enrolment(secret, totp.provisioning_uri(secret, row.user.username))


def confirm_enrolment(
    session: Session,
    keys: KeyProvider,
    token: str,
    code: str,
    address: str | None,
    request_id: str | None,
    now: datetime,
) -> Proceed | Refused:
    """Enrolment ends with a code from the new secret: only then is the secret the
    user's, and the person signed in."""
    row = _pending(session, token, Stage.ENROL_TOTP, now)
    if row is None or row.pending_totp_secret is None:
        return Refused("no-sign-in")
    secret = _opened(keys, row.pending_totp_secret, _sign_in_context(row))
    if secret is None:
        return Refused("no-sign-in")
    step = totp.matching_step(secret, code, now, None)
    if step is None:
        refused = _failed(session, row.user, "wrong-enrolment-code", address, request_id, now)
        if refused.locked:
            row.ended = now
        return refused
    row.user.totp_secret = _sealed(keys, secret, _user_context(row.user))
    row.pending_totp_secret = None
    return _signed_in(session, row, step, address, request_id, now, {"totp": "enrolled"})


def seal_totp_secrets(session: Session, provider: LocalKeyProvider) -> int:
    """`exchange keys rotate`: every console user's TOTP secret sealed under the keyring's
    current KEK (a sealed one re-wrapped, one enrolled before secrets were sealed sealed
    now), and every pending enrolment's too; how many changed."""
    changed = 0
    users = session.scalars(select(ConsoleUser).where(ConsoleUser.totp_secret.is_not(None)))
    for user in users:
        if user.totp_secret is not None:
            user.totp_secret, moved = _resealed(provider, user.totp_secret, _user_context(user))
            changed += moved
    pending = session.scalars(
        select(ConsoleSession).where(ConsoleSession.pending_totp_secret.is_not(None))
    )
    for row in pending:
        if row.pending_totp_secret is not None:
            row.pending_totp_secret, moved = _resealed(
                provider, row.pending_totp_secret, _sign_in_context(row)
            )
            changed += moved
    return changed


def _resealed(provider: LocalKeyProvider, stored: str, context: str) -> tuple[str, bool]:
    """`stored` sealed under the current KEK, and whether that changed its key. One that
    does not open is left as it is (its person is refused at sign-in until an admin resets
    their authenticator): it does not stop the rotation of every other key."""
    if not is_sealed(stored):
        return seal(provider, stored, context), True
    try:
        rewrapped = rewrap_sealed(provider, stored, context)
    except SealedValueError:
        log.error("a stored TOTP secret does not open for its row", extra={"context": "totp"})
        return stored, False
    return rewrapped, sealed_key_ref(rewrapped) != sealed_key_ref(stored)


def current(session: Session, token: str, now: datetime) -> Identity | None:
    """The person a session token belongs to, at any stage, if the session is current;
    an active session's idle clock restarts. A session found expired is ended (audited
    as a sign-out for idle time)."""
    row = session.get(ConsoleSession, token_hash(token))
    if row is None or row.ended is not None:
        return None
    user = row.user
    if row.stage == Stage.ACTIVE:
        expired = now - row.last_seen > IDLE_TIMEOUT or now - row.created > SESSION_LIFETIME
    else:
        expired = now - row.created > SIGN_IN_LIFETIME
    if expired or not user.enabled:
        row.ended = now
        if row.stage == Stage.ACTIVE:
            _audit(
                session,
                AuditKind.LOGOUT,
                _actor(user, None),
                now,
                None,
                reason="idle-timeout" if user.enabled else "user-disabled",
            )
        return None
    row.last_seen = now
    organisation = user.organisation
    return Identity(
        user_id=user.id,
        username=user.username,
        roles=tuple(user.roles),
        organisation_id=organisation.id,
        organisation=organisation.ods,
        organisation_name=organisation.name,
        organisation_role=organisation.role,
        break_glass_allowed=organisation.break_glass,
        stage=Stage(row.stage),
    )


def sign_out(
    session: Session, token: str, address: str | None, request_id: str | None, now: datetime
) -> bool:
    """End a session (audited for a signed-in one); False if it was not current."""
    row = session.get(ConsoleSession, token_hash(token))
    if row is None or row.ended is not None:
        return False
    row.ended = now
    if row.stage == Stage.ACTIVE:
        _audit(session, AuditKind.LOGOUT, _actor(row.user, address), now, request_id)
    return True


def end_sessions(session: Session, user_id: uuid.UUID, now: datetime) -> None:
    """End every session of a user (disabled, password or TOTP reset)."""
    _end_sessions(session, user_id, now)
