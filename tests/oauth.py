"""Client-side OAuth for tests: key pairs for every algorithm, signed client assertions
(good and deliberately bad ones), and getting tokens through the real token endpoint."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ALGORITHMS = ("RS256", "RS384", "RS512", "ES256", "ES384", "PS256", "PS384")


@cache
def signing_key(alg: str, name: str = "main") -> RSAKey | ECKey:
    """A private key for `alg` (cached: RSA generation is slow), kid `<name>-<alg>`."""
    params = {"kid": f"{name}-{alg.lower()}", "use": "sig", "alg": alg}
    if alg.startswith("ES"):
        return ECKey.generate_key({"ES256": "P-256", "ES384": "P-384"}[alg], parameters=params)
    return RSAKey.generate_key(2048, parameters=params)


def public_jwks(*keys: RSAKey | ECKey) -> dict[str, Any]:
    """The public JWKS of some keys."""
    return {"keys": [key.as_dict(private=False) for key in keys]}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def claims_for(
    client_id: str, audience: str, now: datetime, lifetime: int = 120, **overrides: Any
) -> dict[str, Any]:
    """The claims of a valid assertion, with overrides (None deletes a claim)."""
    claims: dict[str, Any] = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "exp": int(now.timestamp()) + lifetime,
        "iat": int(now.timestamp()),
        "jti": str(uuid.uuid4()),
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def sign(claims: dict[str, Any], key: RSAKey | ECKey, alg: str | None = None, **header: Any) -> str:
    """A compact JWS of `claims` signed with `key`."""
    alg = alg or str(key.get("alg"))
    protected = {"alg": alg, "kid": key.kid, "typ": "JWT", **header}
    protected = {k: v for k, v in protected.items() if v is not None}
    return jwt.encode(protected, claims, key, algorithms=[alg])


def unsigned(claims: dict[str, Any], kid: str) -> str:
    """An `alg: none` token."""
    header = {"alg": "none", "kid": kid, "typ": "JWT"}
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}."


def hmac_with_public_key(claims: dict[str, Any], key: RSAKey | ECKey) -> str:
    """The classic confusion attack: HS256 keyed with the public key's PEM."""
    import hashlib
    import hmac

    header = {"alg": "HS256", "kid": key.kid, "typ": "JWT"}
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    secret = key.as_pem(private=False)
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def token_form(
    assertion: str, scope: str | None = None, grant_type: str = "client_credentials"
) -> dict[str, str]:
    """The form body of a token request."""
    form = {
        "grant_type": grant_type,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
    }
    if scope is not None:
        form["scope"] = scope
    return form


@dataclass
class TestClient:
    """A registered test client and its private key."""

    client_id: str
    key: RSAKey | ECKey
    organisation: str
    scopes: list[str] = field(default_factory=list)
