"""`/oauth2/*` and the SMART configuration: authlib's AuthorizationServer with only the
client-credentials grant and `private_key_jwt` client authentication, wired in one place.

Token requests are audited after authlib has answered: success in the same transaction as
the token row (a token exists if and only if its issue is on record), failures through the
aggregating failure windows. Errors keep RFC 6749's JSON shape; `invalid_client` is 401.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import InvalidScopeError
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from exchange.api.context import services
from exchange.api.guards import public
from exchange.api.limits import bounded_body
from exchange.api.ratelimit import RateLimiter
from exchange.auth.assertion import ALGORITHMS, AssertionAuthentication, claimed_key
from exchange.auth.clients import (
    AUTH_METHOD,
    OAuthClient,
    find_client,
    record_token_success,
    remote_keys_uri,
)
from exchange.auth.failures import TokenFailure, record_token_failure
from exchange.auth.jwks import JwksCache, JwksUnavailable
from exchange.auth.scopes import RESOURCE_TYPES
from exchange.auth.tokens import (
    TOKEN_LIFETIME,
    TokenState,
    consume_assertion_jti,
    find_token,
    issue_token,
    revoke,
)

bp = Blueprint("oauth", __name__)


class SystemClientCredentials(ClientCredentialsGrant):  # type: ignore[misc]
    """Client credentials whose grant is the intersection of requested and allowed scopes."""

    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = [AUTH_METHOD]

    def validate_token_request(self) -> None:
        super().validate_token_request()
        granted = self.request.client.get_allowed_scope(self.request.payload.scope or "")
        if not granted:
            raise InvalidScopeError(
                description="None of the requested scopes is allowed for this client."
            )
        self.request.granted_scope = granted

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        token = self.generate_token(scope=self.request.granted_scope, include_refresh_token=False)
        self.save_token(token)
        return 200, token, self.TOKEN_RESPONSE_HEADER


class _ClientAuthenticatedEndpoint:
    CLIENT_AUTH_METHODS: ClassVar[list[str]] = [AUTH_METHOD]

    def query_token(self, token_string: str, token_type_hint: str | None) -> TokenState | None:
        if token_type_hint not in (None, "access_token"):
            return None
        return find_token(g.oauth_session, token_string, services().clock.now())


class Revocation(_ClientAuthenticatedEndpoint, RevocationEndpoint):  # type: ignore[misc]
    """RFC 7009: revoke one of the calling client's own tokens."""

    def authenticate_token(self, request: Any, client: OAuthClient) -> TokenState | None:
        self.check_params(request, client)
        state = self.query_token(request.form["token"], request.form.get("token_type_hint"))
        # Another client's token is answered like an unknown one: nothing is revealed.
        if state is None or state.client.client_id != client.client_id:
            return None
        return state

    def revoke_token(self, token: TokenState, request: Any) -> None:
        revoke(g.oauth_session, token, services().clock.now())
        g.revoked_jti = str(token.record.jti)


class Introspection(_ClientAuthenticatedEndpoint, IntrospectionEndpoint):  # type: ignore[misc]
    """RFC 7662: a client may introspect only its own tokens."""

    def check_permission(self, token: TokenState, client: OAuthClient, request: Any) -> bool:
        return token.client.client_id == client.client_id

    def introspect_token(self, token: TokenState) -> dict[str, Any]:
        if not token.active:
            return {"active": False}
        record_ = token.record
        return {
            "active": True,
            "client_id": record_.client_id,
            "scope": record_.scope,
            "token_type": "Bearer",
            "exp": int(record_.expires_at.timestamp()),
            "iat": int(record_.issued_at.timestamp()),
            "jti": str(record_.jti),
            "sub": record_.client_id,
            "iss": services().settings.public_base_url,
            "organization": token.client.organisation.ods,
        }


def _query_client(client_id: str) -> OAuthClient | None:
    return find_client(g.oauth_session, client_id)


def _save_token(token: dict[str, Any], oauth_request: Any) -> None:
    g.issued = issue_token(
        g.oauth_session,
        oauth_request.client.record,
        token["scope"],
        oauth_request.assertion_jti,
        services().clock.now(),
        raw=token["access_token"],
    )


def _generate_token(
    grant_type: str,
    client: OAuthClient,
    user: Any = None,
    scope: str | None = None,
    expires_in: int | None = None,
    include_refresh_token: bool = False,
) -> dict[str, Any]:
    return {
        "token_type": "Bearer",
        "access_token": secrets.token_urlsafe(32),
        "expires_in": int(TOKEN_LIFETIME.total_seconds()),
        "scope": scope or "",
    }


def _consume_jti(client_id: str, jti: str, expires: datetime) -> bool:
    # In the token request's transaction, which commits even when the answer is an error,
    # so a jti is spent once presented. A concurrent replay on another worker blocks on the
    # primary key until this commits, then fails on it (PostgreSQL); SQLite serialises.
    return consume_assertion_jti(g.oauth_session, client_id, jti, expires)


def _audiences() -> list[str]:
    base = services().settings.public_base_url
    return [f"{base}/oauth2/token", f"{base}{request.path}"]


def _now() -> float:
    return services().clock.now().timestamp()


authorization = AuthorizationServer()


def init_app(app: Flask, token_rate: RateLimiter) -> None:
    """Bind the authorization server and the per-address token rate limiter to `app`."""
    assertion = AssertionAuthentication(_audiences, _consume_jti, _remote_keys, now=_now)
    app.extensions[_JWKS_CACHE] = JwksCache()

    def authenticate(query_client: Any, oauth_request: Any) -> OAuthClient | None:
        # Note who the caller claimed and proved to be, for the audit record.
        try:
            client: OAuthClient | None = assertion(query_client, oauth_request)
        finally:
            g.claimed_client_id = getattr(oauth_request, "claimed_client_id", None)
        if client is not None:
            g.authenticated_client_id = client.client_id
            g.assertion_jti = getattr(oauth_request, "assertion_jti", None)
        return client

    authorization.init_app(app, query_client=_query_client, save_token=_save_token)
    authorization.register_token_generator("default", _generate_token)
    authorization.register_grant(SystemClientCredentials)
    authorization.register_endpoint(Revocation)
    authorization.register_endpoint(Introspection)
    authorization.register_client_auth_method(AUTH_METHOD, authenticate)
    app.extensions[_TOKEN_RATE] = token_rate


_TOKEN_RATE = "exchange.token_rate"  # noqa: S105 - an extension key, not a secret
_JWKS_CACHE = "exchange.jwks_cache"


@dataclass(frozen=True, slots=True)
class _RemoteKeys:
    """A `jwks_uri` client's key set, or why it could not be had, fetched for this request."""

    uri: str
    jwks: dict[str, Any] | None
    problem: JwksUnavailable | None


def _prefetch_remote_keys() -> None:
    """Fetch a `jwks_uri` client's keys before the endpoint's transaction opens: on SQLite
    that transaction holds the database's write lock, and a slow host must not hold every
    other client's token request with it."""
    g.remote_keys = None
    claimed = claimed_key(request.form.get("client_assertion", ""))
    if claimed is None:
        return
    client_id, kid = claimed
    with services().database.transaction() as session:
        uri = remote_keys_uri(session, client_id)
    if uri is None:
        return
    try:
        g.remote_keys = _RemoteKeys(uri, current_app.extensions[_JWKS_CACHE].get(uri, kid), None)
    except JwksUnavailable as problem:
        g.remote_keys = _RemoteKeys(uri, None, problem)


def _remote_keys(uri: str, kid: str) -> dict[str, Any]:
    """The key set prefetched for this request (never a fetch inside the transaction)."""
    fetched: _RemoteKeys | None = g.get("remote_keys")
    if fetched is None or fetched.uri != uri:
        raise JwksUnavailable("the client's keys were not fetched before the request's transaction")
    if fetched.problem is not None:
        raise fetched.problem
    assert fetched.jwks is not None  # noqa: S101 - set together with problem=None
    return fetched.jwks


def _rate_limited() -> Response | None:
    limiter: RateLimiter = current_app.extensions[_TOKEN_RATE]
    wait = limiter.check(request.remote_addr or "unknown")
    if wait is None:
        return None
    response = jsonify(
        error="invalid_request", error_description="Too many token requests from this address."
    )
    response.status_code = 429
    response.headers["Retry-After"] = str(wait)
    return response


def _oauth_response(respond: Callable[[], Response], endpoint: str) -> Response:
    """Run an authlib endpoint in one transaction, then audit what it answered."""
    try:
        bounded_body()  # the form, read through its limit before anything parses it
    except RequestEntityTooLarge:
        _audit_failure("invalid_request", "the request body is larger than this service accepts")
        raise
    _prefetch_remote_keys()
    with services().database.transaction() as session:
        g.oauth_session = session
        response = respond()
        body = json.loads(response.get_data(as_text=True) or "{}")
        error = body.get("error") if response.status_code >= 400 else None
        if error == "invalid_client":
            response.status_code = 401  # RFC 6749 5.2, as api.md requires
        if error is None:
            assertion_jti = g.get("assertion_jti")
            record_token_success(
                session,
                g.get("authenticated_client_id"),
                endpoint,
                g.get("issued"),
                str(assertion_jti) if assertion_jti else None,
                g.get("revoked_jti"),
                request.remote_addr,
                g.get("request_id"),
                services().clock.now(),
            )
    if error is not None:
        _audit_failure(str(error), str(body.get("error_description") or error))
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


def _audit_failure(error: str, reason: str) -> None:
    failure = TokenFailure(
        source=request.remote_addr or "unknown",
        claimed_client=g.get("claimed_client_id"),
        error=error,
        reason=reason,
        request_id=g.get("request_id"),
    )
    with services().database.transaction() as session:
        record_token_failure(session, failure, services().clock)


@bp.post("/oauth2/token")
@public
def token() -> Response:
    """Client credentials with a private_key_jwt assertion → a Bearer access token."""
    limited = _rate_limited()
    if limited is not None:
        _audit_failure("rate_limited", "too many token requests from this address")
        return limited
    return _oauth_response(authorization.create_token_response, "token")


@bp.post("/oauth2/revoke")
@public
def revoke_token() -> Response:
    """RFC 7009 revocation: 200 with an empty body, also for an unknown token."""
    response = _oauth_response(
        lambda: authorization.create_endpoint_response(Revocation.ENDPOINT_NAME), "revoke"
    )
    if response.status_code == 200:
        response.set_data(b"")
        response.headers.pop("Content-Type", None)
    return response


@bp.post("/oauth2/introspect")
@public
def introspect() -> Response:
    """RFC 7662 introspection of the calling client's own tokens."""
    return _oauth_response(
        lambda: authorization.create_endpoint_response(Introspection.ENDPOINT_NAME), "introspect"
    )


@bp.get("/oauth2/jwks")
@public
def jwks() -> Response:
    """The service's token-signing keys: none, because access tokens are opaque."""
    return jsonify(keys=[])


def smart_configuration(base_url: str) -> dict[str, Any]:
    """The SMART configuration document (`api.md`)."""
    return {
        "issuer": base_url,
        "token_endpoint": f"{base_url}/oauth2/token",
        "revocation_endpoint": f"{base_url}/oauth2/revoke",
        "introspection_endpoint": f"{base_url}/oauth2/introspect",
        "jwks_uri": f"{base_url}/oauth2/jwks",
        "token_endpoint_auth_methods_supported": [AUTH_METHOD],
        "token_endpoint_auth_signing_alg_values_supported": ALGORITHMS,
        "grant_types_supported": ["client_credentials"],
        "scopes_supported": [
            f"system/{t}.{p}"
            for t in ("*", *RESOURCE_TYPES)
            for p in ("cruds", "rs", "read", "write")
        ],
        "capabilities": ["client-confidential-asymmetric"],
        "response_types_supported": ["token"],
    }
