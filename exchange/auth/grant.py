"""What an access token grants: the client, its organisation and the scopes of the token."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from exchange.auth.scopes import Scope


@dataclass(frozen=True, slots=True)
class AccessGrant:
    """An OAuth client acting for its organisation, with the scopes its token grants
    (`access.md`: scopes say which interactions; the use cases say which records)."""

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
