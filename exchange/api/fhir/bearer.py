"""Who is calling `/fhir`, and may they: the bearer token, the scope the endpoint needs,
the per-client rate limit, then content negotiation — in the order `access.md` gives
(401 → 403 insufficient-scope → 400/413/415)."""

from __future__ import annotations

from flask import current_app, g, request

from exchange.api.context import services
from exchange.api.guards import GUARD_ATTR
from exchange.api.ratelimit import RateLimiter
from exchange.auth.tokens import caller_for
from exchange.fhir.outcome import FhirError

CLIENT_RATE = "exchange.client_rate"
_UNAUTHENTICATED = {"WWW-Authenticate": 'Bearer error="invalid_token"'}


def invalid_token(diagnostics: str) -> FhirError:
    """401 with the Bearer challenge."""
    return FhirError(401, "login", diagnostics, headers=dict(_UNAUTHENTICATED))


def authenticate() -> None:
    """Resolve the bearer token (if any) and enforce the endpoint's scope guard."""
    g.caller = None
    view = current_app.view_functions.get(request.endpoint or "")
    guard = getattr(view, GUARD_ATTR, None)
    if guard is None:
        return  # public conformance endpoints: a stale token sent along does no harm
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or len(token) > 512:
            raise invalid_token("the Authorization header must be 'Bearer <access token>'")
        with services().database.lookup() as connection:
            g.caller = caller_for(connection, token, services().clock.now())
        if g.caller is None:
            raise invalid_token("the access token is not valid (unknown, expired or revoked)")
    if g.caller is None:
        raise invalid_token("a valid bearer access token is required")
    resource, permission = guard
    if not g.caller.allows(resource, permission):
        raise FhirError(
            403,
            "forbidden",
            f"the access token's scopes do not allow this interaction on {resource}",
            details_code="insufficient-scope",
        )
    limiter: RateLimiter = current_app.extensions[CLIENT_RATE]
    wait = limiter.check(g.caller.client_id)
    if wait is not None:
        raise FhirError(
            429,
            "throttled",
            "too many requests from this client",
            headers={"Retry-After": str(wait)},
        )
