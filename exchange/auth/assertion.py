"""Client authentication by signed JWT assertion (RFC 7523, "private_key_jwt"), as
NHS England's signed-JWT pattern and SMART Backend Services use it.

authlib's `JWTBearerClientAssertion` does the RFC 7523 claim checks; this subclass adds
what this service requires (`api.md`): an explicit algorithm allow-list (authlib/joserfc
accept only RS256/ES256 by default; NHS England uses RS512), `kid` resolved against the
client's registered keys (refreshing a `jwks_uri` on an unknown kid), `aud` exactly the
token URL (or the endpoint's own URL for revoke/introspect), `exp` at most 5 minutes ahead,
60 s skew for `iat`/`nbf`, and a `jti` replay store in the database.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, cast

from authlib.oauth2.rfc6749 import InvalidClientError
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from exchange.auth.jwks import JwksUnavailable

if TYPE_CHECKING:
    from joserfc.jwk import KeySetSerialization

log = logging.getLogger("exchange.auth")

ALGORITHMS: Final = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256", "PS384"]
MAX_ASSERTION_BYTES: Final = 8 * 1024
MAX_LIFETIME_SECONDS: Final = 300
SKEW_SECONDS: Final = 60
#: Integer `exp` values round; a client setting exactly now + 300 must not fail by a second.
_ROUNDING: Final = 2


class AssertionAuthentication(JWTBearerClientAssertion):  # type: ignore[misc]
    """`private_key_jwt` client authentication against the registry and the jti store."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(
        self,
        audiences: Callable[[], list[str]],
        consume_jti: Callable[[str, str, datetime], bool],
        remote_keys: Callable[[str, str], dict[str, Any]],
        now: Callable[[], float] = time.time,
    ) -> None:
        """`remote_keys(jwks_uri, kid)` gives a client's published key set or raises
        JwksUnavailable; it must not wait on the network inside the token transaction
        (the token endpoint fetches before it opens one: `prefetch_remote_keys`)."""
        super().__init__(validate_jti=True, leeway=SKEW_SECONDS)
        self._audiences = audiences
        self._consume_jti = consume_jti
        self._remote_keys = remote_keys
        self._now = now

    def __call__(self, query_client: Callable[[str], Any], request: Any) -> Any:
        assertion = request.form.get("client_assertion") or ""
        if request.form.get("client_assertion_type") != self.CLIENT_ASSERTION_TYPE or not assertion:
            return None
        if len(assertion) > MAX_ASSERTION_BYTES:
            raise InvalidClientError(description="The client assertion is too large.")
        headers, claims = self.extract_assertion(assertion)
        algorithm = headers.get("alg")
        if algorithm not in ALGORITHMS:
            raise InvalidClientError(
                description=f"The assertion algorithm must be one of {', '.join(ALGORITHMS)}."
            )
        typ = headers.get("typ")
        if typ is not None and str(typ).upper() != "JWT":
            raise InvalidClientError(description="The assertion typ must be JWT.")
        client_id = claims.get("sub")
        if not isinstance(client_id, str) or not client_id:
            raise InvalidClientError(description="Missing claim: 'sub'.")
        if claims.get("iss") != client_id:
            raise InvalidClientError(description="Issuer and Subject MUST match.")
        request.claimed_client_id = client_id
        client = query_client(client_id)
        if client is None:
            raise InvalidClientError(description="The client does not exist on this server.")
        if not client.enabled:
            raise InvalidClientError(description="The client is disabled.")
        kid = headers.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidClientError(description="The assertion header must name a kid.")
        keys = self._key_set(client, kid)
        if not any(key.kid == kid for key in keys.keys):
            raise InvalidClientError(
                description="The assertion's kid is not one of the client's registered keys."
            )
        request.client = client
        verified = self.process_assertion_claims(assertion, keys)
        request.assertion_jti = verified["jti"]
        return self.authenticate_client(client)

    def _key_set(self, client: Any, kid: str) -> KeySet:
        try:
            jwks = (
                client.jwks if client.jwks is not None else self._remote_keys(client.jwks_uri, kid)
            )
        except JwksUnavailable as exc:
            # The detail (an upstream status, a timeout) is for the operator, not for an
            # unauthenticated caller probing the client's infrastructure.
            log.warning(
                "client keys unavailable", extra={"client_id": client.client_id, "reason": str(exc)}
            )
            raise InvalidClientError(description="The client could not be authenticated.") from None
        return KeySet.import_key_set(cast("KeySetSerialization", jwks))

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> dict[str, Any]:
        try:
            token = jwt.decode(assertion, resolve_key, algorithms=ALGORITHMS)
        except JoseError as exc:
            raise InvalidClientError(
                description=exc.description or "The assertion signature is not valid."
            ) from None
        claims: dict[str, Any] = dict(token.claims)
        self.verify_claims(claims)
        return claims

    def verify_claims(self, claims: Any) -> None:
        now = self._now()
        exp, nbf, iat = claims.get("exp"), claims.get("nbf"), claims.get("iat")
        for name, value in (("exp", exp), ("nbf", nbf), ("iat", iat)):
            if value is not None and (
                not isinstance(value, int | float) or isinstance(value, bool)
            ):
                raise InvalidClientError(description=f"Invalid claim: '{name}'.")
        if exp is None:
            raise InvalidClientError(description="Missing claim: 'exp'.")
        if exp > now + MAX_LIFETIME_SECONDS + _ROUNDING:
            raise InvalidClientError(
                description="The assertion's exp is more than 5 minutes ahead."
            )
        if nbf is not None and nbf > now + SKEW_SECONDS:
            raise InvalidClientError(description="The assertion is not valid yet (nbf).")
        if iat is not None and iat > now + SKEW_SECONDS:
            raise InvalidClientError(description="The assertion was issued in the future (iat).")
        aud = claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        if not any(isinstance(a, str) and a in self.get_audiences() for a in audiences):
            raise InvalidClientError(description="The assertion's aud is not this token endpoint.")
        if exp < now - SKEW_SECONDS:
            raise InvalidClientError(description="The assertion has expired.")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti or len(jti) > 256:
            raise InvalidClientError(description="Missing claim: 'jti'.")
        expires = datetime.fromtimestamp(float(exp) + SKEW_SECONDS, UTC)
        if not self._consume_jti(str(claims["sub"]), jti, expires):
            raise InvalidClientError(description="The assertion's jti was used before (replay).")

    def get_audiences(self) -> list[str]:
        return self._audiences()


def claimed_key(assertion: str) -> tuple[str, str] | None:
    """The client id (`sub`) and `kid` an assertion claims, read without verifying it (to
    know whose keys to fetch), or None if it does not say."""
    if not assertion or len(assertion) > MAX_ASSERTION_BYTES:
        return None
    try:
        token = jws.extract_compact(assertion.encode("ascii"))
        claims = json.loads(token.payload)
    except (JoseError, UnicodeError, ValueError):
        return None
    subject, kid = (
        claims.get("sub") if isinstance(claims, dict) else None,
        token.headers().get("kid"),
    )
    return (
        (subject, kid)
        if isinstance(subject, str) and isinstance(kid, str) and subject and kid
        else None
    )
