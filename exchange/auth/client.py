"""The client side of private_key_jwt, for operators and the demo: sign an assertion with
a private JWK and exchange it for an access token at the token endpoint."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import requests
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def load_private_key(path: Path) -> ECKey | RSAKey:
    """A private EC or RSA key from a JWK file."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if "d" not in data:
        raise ValueError(f"{path} holds no private key")
    key: ECKey | RSAKey = (
        ECKey.import_key(data) if data.get("kty") == "EC" else RSAKey.import_key(data)
    )
    return key


def client_assertion(
    client_id: str,
    key: ECKey | RSAKey,
    token_url: str,
    lifetime: int = 240,
    issued: datetime | None = None,
) -> str:
    """A signed client assertion for `token_url`, valid `lifetime` seconds from `issued`
    (now, unless a demo replays another moment)."""
    alg = str(key.get("alg") or ("ES256" if isinstance(key, ECKey) else "RS384"))
    now = int(issued.timestamp()) if issued is not None else int(time.time())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": token_url,
        "exp": now + lifetime,
        "iat": now,
        "jti": str(uuid.uuid4()),
    }
    return jwt.encode({"alg": alg, "kid": key.kid, "typ": "JWT"}, claims, key, algorithms=[alg])


def request_token(
    client_id: str, key: ECKey | RSAKey, token_url: str, scope: str | None = None
) -> dict[str, Any]:
    """POST a client-credentials request; the token endpoint's JSON answer (or error)."""
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": client_assertion(client_id, key, token_url),
    }
    if scope:
        form["scope"] = scope
    response = requests.post(token_url, data=form, timeout=10)
    answer: dict[str, Any] = response.json()
    return answer
