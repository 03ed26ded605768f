"""Registered OAuth clients as the token endpoint needs them: authlib's view of a client
(client credentials and private_key_jwt only), its key source, and the audit record of a
token issued, revoked or introspected (`api.md`, Authentication)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from authlib.oauth2.rfc6749 import ClientMixin
from sqlalchemy.orm import Session

from exchange.audit.events import Action, Actor, AuditEntry, AuditKind, Outcome
from exchange.audit.service import record
from exchange.auth.models import Client
from exchange.auth.scopes import ScopeError, intersect, parse_scope, parse_scopes
from exchange.auth.tokens import IssuedToken

AUTH_METHOD: Final = "private_key_jwt"


class OAuthClient(ClientMixin):  # type: ignore[misc]
    """A registered client as authlib sees it: client credentials only, private_key_jwt only."""

    def __init__(self, client: Client) -> None:
        self.record = client

    @property
    def client_id(self) -> str:
        return self.record.client_id

    @property
    def enabled(self) -> bool:
        return self.record.enabled

    @property
    def jwks(self) -> dict[str, Any] | None:
        return self.record.jwks

    @property
    def jwks_uri(self) -> str | None:
        return self.record.jwks_uri

    def get_client_id(self) -> str:
        return self.record.client_id

    def get_default_redirect_uri(self) -> None:
        return None

    def get_allowed_scope(self, scope: str) -> str:
        requested = _parse_requested(scope) if scope else parse_scopes(self.record.scopes)
        return " ".join(str(s) for s in intersect(requested, parse_scopes(self.record.scopes)))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        return False

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == AUTH_METHOD

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "client_credentials"


def _parse_requested(scope: str) -> list[Any]:
    # Scopes this service does not know simply fall out of the intersection.
    parsed = []
    for text in scope.split():
        try:
            parsed.append(parse_scope(text))
        except ScopeError:
            continue
    return parsed


def find_client(session: Session, client_id: str) -> OAuthClient | None:
    """The registered client with this id, as authlib sees it."""
    client = session.get(Client, client_id)
    return OAuthClient(client) if client is not None else None


def remote_keys_uri(session: Session, client_id: str) -> str | None:
    """The `jwks_uri` of an enabled client that publishes its keys there."""
    client = session.get(Client, client_id)
    return client.jwks_uri if client is not None and client.enabled else None


def record_token_success(
    session: Session,
    client_id: str | None,
    endpoint: str,
    issued: IssuedToken | None,
    assertion_jti: str | None,
    revoked_jti: str | None,
    address: str | None,
    request_id: str | None,
    now: datetime,
) -> None:
    """Audit a granted token request (or a revocation or introspection), in the same
    transaction as the token row: a token exists if and only if its issue is on record."""
    client = session.get(Client, client_id) if client_id else None
    details = {"endpoint": endpoint}
    if issued is not None:
        details["scope"] = issued.scope
    if assertion_jti:
        details["assertion-jti"] = assertion_jti
    actor = Actor(
        client_id=client.client_id if client else None,
        organisation=client.organisation.ods if client else None,
        address=address,
        token_jti=str(issued.jti) if issued else revoked_jti,
    )
    record(
        session,
        AuditEntry(
            kind=AuditKind.TOKEN,
            action=Action.EXECUTE,
            outcome=Outcome.SUCCESS,
            actor=actor,
            request_id=request_id,
            details=details,
        ),
        at=now,
    )
