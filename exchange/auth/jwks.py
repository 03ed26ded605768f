"""Clients' public keys: the inline JWKS from the registry, or the client's `jwks_uri`
fetched with a timeout and a size limit, cached, and refreshed when an assertion names a
`kid` the cached set does not have (rate-limited, so a stream of made-up kids cannot turn
the service into a load generator against the client's host)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any, Final

import requests

from exchange.registry.specs import check_jwks

FETCH_TIMEOUT: Final = 3.0
MAX_JWKS_BYTES: Final = 64 * 1024
CACHE_SECONDS: Final = 300.0
MIN_REFRESH_SECONDS: Final = 30.0


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
        with requests.get(uri, timeout=FETCH_TIMEOUT, stream=True, allow_redirects=False) as response:
            if response.status_code != 200:
                raise JwksUnavailable(f"the client's jwks_uri answered {response.status_code}")
            body = _body_by(response, deadline)
    except requests.RequestException as exc:
        raise JwksUnavailable(f"the client's jwks_uri could not be fetched ({type(exc).__name__})") from None
    except TimeoutError:
        raise JwksUnavailable(f"the client's jwks_uri did not answer within {FETCH_TIMEOUT:g} s") from None
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
