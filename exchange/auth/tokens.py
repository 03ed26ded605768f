"""Access tokens: opaque random strings, stored as SHA-256 hashes, valid 300 s, revocable.

Opaque rather than JWT because every request must see a revocation at once in every
worker: a JWT would need a database look-up for that anyway, and an opaque token leaks
nothing (client, scopes, organisation) to whoever holds it.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Final

from sqlalchemy import bindparam, delete, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from exchange.agreements.models import Organisation
from exchange.auth.grant import AccessGrant
from exchange.auth.models import AccessToken, Client, ClientAssertionJti
from exchange.auth.scopes import Scope, ScopeError, parse_scope
from exchange.db import Prepared

TOKEN_LIFETIME: Final = timedelta(seconds=300)


def token_hash(token: str) -> str:
    """The stored form of a token (tokens are 256-bit random: a fast hash is enough)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A token as handed to the client, with its record."""

    access_token: str
    jti: uuid.UUID
    expires_in: int
    scope: str


def issue_token(
    session: Session,
    client: Client,
    scope: str,
    assertion_jti: str,
    now: datetime,
    raw: str | None = None,
) -> IssuedToken:
    """Create an access token for `client` with the granted `scope` (`raw`: the token
    string, when authlib's generator made it)."""
    raw = raw or secrets.token_urlsafe(32)
    jti = uuid.uuid4()
    session.add(
        AccessToken(
            token_hash=token_hash(raw),
            jti=jti,
            client_id=client.client_id,
            scope=scope,
            assertion_jti=assertion_jti,
            issued_at=now,
            expires_at=now + TOKEN_LIFETIME,
        )
    )
    return IssuedToken(raw, jti, int(TOKEN_LIFETIME.total_seconds()), scope)


@dataclass(frozen=True, slots=True)
class TokenState:
    """A stored token and why it is (in)active."""

    record: AccessToken
    client: Client
    active: bool

    def is_expired(self) -> bool:
        """authlib's token protocol: not active counts as expired (or revoked)."""
        return not self.active

    def is_revoked(self) -> bool:
        """authlib's token protocol."""
        return self.record.revoked_at is not None


#: Built once: every API request asks it (bench/profiles/api-load.md). The client's
#: organisation comes in the same query (joined eagerly).
_FIND_TOKEN: Final = (
    select(AccessToken, Client)
    .join(Client, Client.client_id == AccessToken.client_id)
    .where(AccessToken.token_hash == bindparam("token_hash"))
)


def find_token(session: Session, raw: str, now: datetime) -> TokenState | None:
    """The stored token for `raw`, or None if this server never issued it."""
    row = session.execute(_FIND_TOKEN, {"token_hash": token_hash(raw)}).first()
    if row is None:
        return None
    token, client = row
    active = token.revoked_at is None and token.expires_at > now and client.enabled
    return TokenState(token, client, active)


#: What `caller_for` needs, as plain columns: no ORM objects (nor the client's key set)
#: are loaded on the hot path of every request (bench/profiles/api-load.md).
_CALLER: Final = Prepared(
    select(
        AccessToken.jti,
        AccessToken.scope,
        AccessToken.expires_at,
        AccessToken.revoked_at,
        Client.client_id,
        Client.enabled,
        Organisation.id,
        Organisation.ods,
        Organisation.role,
        Organisation.break_glass,
    )
    .join(Client, Client.client_id == AccessToken.client_id)
    .join(Organisation, Organisation.id == Client.organisation_id)
    .where(AccessToken.token_hash == bindparam("token_hash"))
)


@lru_cache(maxsize=256)
def _scopes(granted: str) -> tuple[Scope, ...]:
    """The scopes of a token's scope string (tokens of one client share a few strings)."""
    scopes = []
    for text in granted.split():
        try:
            scopes.append(parse_scope(text))
        except ScopeError:
            continue
    return tuple(scopes)


def caller_for(connection: Connection, raw: str, now: datetime) -> AccessGrant | None:
    """The caller an access token stands for, or None if it is unknown, expired, revoked,
    or its client has been disabled since. One query, asked afresh on every request, so a
    revocation or a disabled client is refused at once by every worker."""
    row = _CALLER.first(connection, {"token_hash": token_hash(raw)})
    if row is None:
        return None
    jti, scope, expires_at, revoked_at, client_id, enabled, org_id, ods, role, break_glass = row
    if revoked_at is not None or expires_at <= now or not enabled:
        return None
    return AccessGrant(
        client_id=client_id,
        organisation_id=org_id,
        organisation=ods,
        role=role,
        break_glass=break_glass,
        scopes=_scopes(scope),
        token_jti=str(jti),
    )


def revoke(session: Session, state: TokenState, now: datetime) -> None:
    """Revoke a token: every worker refuses it from the next request on."""
    if state.record.revoked_at is None:
        state.record.revoked_at = now


def consume_assertion_jti(session: Session, client_id: str, jti: str, expires: datetime) -> bool:
    """Record an assertion's jti; False if it was seen before (a replay).

    A replay arriving at another process meets the committed row, or waits on the
    uncommitted insert and then fails on the primary key.
    """
    try:
        with session.begin_nested():
            session.execute(
                insert(ClientAssertionJti).values(client_id=client_id, jti=jti, expires_at=expires)
            )
    except IntegrityError:
        return False
    return True


def purge_expired(session: Session, now: datetime) -> int:
    """Delete jti rows past their assertion's expiry and tokens expired over a day ago."""
    jtis = session.execute(delete(ClientAssertionJti).where(ClientAssertionJti.expires_at < now))
    tokens = session.execute(
        delete(AccessToken).where(AccessToken.expires_at < now - timedelta(days=1))
    )
    return int(getattr(jtis, "rowcount", 0) or 0) + int(getattr(tokens, "rowcount", 0) or 0)
