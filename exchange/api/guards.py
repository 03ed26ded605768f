"""Who may call an endpoint: every view is either explicitly public or guarded.

`public` marks the allow-list (health checks, the OpenAPI document, FHIR conformance
metadata); `requires_scope` guards a FHIR interaction. A test walks the URL map and fails
for any endpoint that is neither, so a new view cannot ship unguarded by omission.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, Final, TypeVar

from flask import g

from exchange.fhir.outcome import FhirError

F = TypeVar("F", bound=Callable[..., Any])

PUBLIC_ATTR: Final = "_exchange_public"
GUARD_ATTR: Final = "_exchange_guard"


def public(view: F) -> F:
    """Mark a view as needing no credentials (it discloses nothing about anyone)."""
    setattr(view, PUBLIC_ATTR, True)
    return view


def requires_scope(resource: str, permission: str) -> Callable[[F], F]:
    """Guard a FHIR view: a valid bearer token whose scopes allow `permission` on `resource`.

    The `/fhir` blueprint enforces the guard before anything else runs (`bearer.py`); the
    wrapper checks again, so a guarded view can never run for an unauthorised caller.
    """

    def decorate(view: F) -> F:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            caller = g.get("caller")
            if caller is None:
                raise FhirError(
                    401,
                    "login",
                    "a valid bearer access token is required",
                    headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
                )
            if not caller.allows(resource, permission):
                raise FhirError(
                    403,
                    "forbidden",
                    f"the access token's scopes do not allow this interaction on {resource}",
                    details_code="insufficient-scope",
                )
            return view(*args, **kwargs)

        setattr(guarded, GUARD_ATTR, (resource, permission))
        return guarded  # type: ignore[return-value]

    return decorate
