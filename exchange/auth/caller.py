"""The authenticated caller of an API request."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from exchange.auth.scopes import Scope


@dataclass(frozen=True, slots=True)
class Caller:
    """An OAuth client acting for its organisation, with the scopes its token grants."""

    client_id: str
    organisation_id: uuid.UUID
    organisation: str  # ODS code
    role: str
    break_glass: bool
    scopes: tuple[Scope, ...]
    token_jti: str

    def allows(self, resource: str, permission: str) -> bool:
        """Whether the token's scopes permit `permission` (c r u d s) on `resource`."""
        return any(scope.allows(resource, permission) for scope in self.scopes)
