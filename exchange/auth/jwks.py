"""Clients' public keys: the inline JWKS from the registry, or the client's `jwks_uri`
fetched with a timeout and a size limit, cached, and refreshed when an assertion names a
`kid` the cached set does not have (rate-limited, so a stream of made-up kids cannot turn
the service into a load generator against the client's host)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, cast
from urllib.parse import urlsplit

import requests
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

if TYPE_CHECKING:
    from joserfc.jwk import KeySetSerialization


FETCH_TIMEOUT: Final = 3.0
_PRIVATE_JWK_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "k", "oth"})
MAX_JWKS_BYTES: Final = 64 * 1024
CACHE_SECONDS: Final = 300.0
MIN_REFRESH_SECONDS: Final = 30.0


def check_jwks(jwks: Any) -> str | None:
    """Why an inline JWKS is unacceptable, or None if it is a set of public signing keys."""
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list) or not jwks["keys"]:
        return 'jwks must be an object {"keys": [...]} with at least one key'
    kids: set[str] = set()
    for position, key in enumerate(jwks["keys"]):
        if not isinstance(key, dict):
            return f"jwks.keys[{position}] must be an object"
        if _PRIVATE_JWK_MEMBERS & set(key):
            # Private or symmetric key material must never be registered (or stored).
            return f"jwks.keys[{position}] contains private or symmetric key material"
        if key.get("kty") not in ("RSA", "EC"):
            return f"jwks.keys[{position}].kty must be RSA or EC"
        kid = key.get("kid")
        if not isinstance(kid, str) or not kid:
            return f"jwks.keys[{position}] needs a kid"
        if kid in kids:
            return f"jwks.keys[{position}] repeats kid {kid!r}"
        kids.add(kid)
    try:
        KeySet.import_key_set(cast("KeySetSerialization", jwks))
    except (JoseError, ValueError, TypeError) as exc:
        return f"jwks is not a valid key set ({type(exc).__name__})"
    return None


def check_jwks_uri(uri: str) -> str | None:
    """Why a `jwks_uri` is unacceptable: it must be https (http only on loopback, for tests)."""
    parts = urlsplit(uri)
    loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if parts.scheme == "https" and parts.hostname:
        return None
    if parts.scheme == "http" and loopback:
        return None
    return "jwks_uri must be an https URL"


class JwksUnavailable(Exception):
    """The client's `jwks_uri` could not be fetched or did not hold a valid key set."""


@dataclass
class _Entry:
    jwks: dict[str, Any]
    fetched: float


class JwksCache:
    """Per-process cache of fetched key sets, by URI."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def get(self, uri: str, kid: str | None) -> dict[str, Any]:
        """The key set at `uri`: cached unless stale, or unless it lacks `kid` and was not
        refreshed in the last MIN_REFRESH_SECONDS."""
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(uri)
        if entry is not None:
            fresh = now - entry.fetched < CACHE_SECONDS
            has_kid = kid is None or any(k.get("kid") == kid for k in entry.jwks["keys"])
            if fresh and (has_kid or now - entry.fetched < MIN_REFRESH_SECONDS):
                return entry.jwks
        jwks = _fetch(uri)
        with self._lock:
            self._entries[uri] = _Entry(jwks, time.monotonic())
        return jwks


def _fetch(uri: str) -> dict[str, Any]:
    """The key set at `uri`, within FETCH_TIMEOUT overall (connect, headers and body
    together: a host trickling bytes cannot hold a request longer than that)."""
    deadline = time.monotonic() + FETCH_TIMEOUT
    try:
        with requests.get(
            uri, timeout=FETCH_TIMEOUT, stream=True, allow_redirects=False
        ) as response:
            if response.status_code != 200:
                raise JwksUnavailable(f"the client's jwks_uri answered {response.status_code}")
            body = _body_by(response, deadline)
    except requests.RequestException as exc:
        raise JwksUnavailable(
            f"the client's jwks_uri could not be fetched ({type(exc).__name__})"
        ) from None
    except TimeoutError:
        raise JwksUnavailable(
            f"the client's jwks_uri did not answer within {FETCH_TIMEOUT:g} s"
        ) from None
    try:
        jwks = json.loads(body)
    except ValueError:
        raise JwksUnavailable("the client's jwks_uri did not return JSON") from None
    problem = check_jwks(jwks)
    if problem is not None:
        raise JwksUnavailable(f"the client's jwks_uri did not return a usable key set ({problem})")
    document: dict[str, Any] = jwks
    return document


def _body_by(response: requests.Response, deadline: float) -> bytes:
    """Read the body, each receive limited to the time left before `deadline` (a read
    timeout alone applies per receive, which a trickle of bytes never trips)."""
    connection = getattr(response.raw, "_connection", None)
    sock = getattr(connection, "sock", None)
    body = b""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        if sock is not None:
            sock.settimeout(remaining)
        chunk = response.raw.read1(8192)
        if not chunk:
            return body
        body += chunk
        if len(body) > MAX_JWKS_BYTES:
            raise JwksUnavailable("the client's JWKS is larger than 64 KiB")
