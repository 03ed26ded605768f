"""SMART scopes for systems: `system/<Type>.<perms>` (`api.md`, Scopes).

v2 permissions are a subsequence of `cruds` (create, read, update, delete, search); the v1
forms `.read` (= `rs`), `.write` (= `cud`) and `.*` (= `cruds`) are accepted too, as is the
wildcard type `*`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

RESOURCE_TYPES: Final = (
    "Patient",
    "Consent",
    "Task",
    "DocumentReference",
    "Binary",
    "AuditEvent",
    "Contract",
    "Organization",
)
PERMISSIONS: Final = "cruds"
_V1: Final = {"read": "rs", "write": "cud", "*": "cruds"}
_SCOPE: Final = re.compile(r"^system/(?P<type>[A-Za-z]+|\*)\.(?P<perms>[a-z]+|\*)$")


class ScopeError(ValueError):
    """A string that is not a scope this service understands."""


@dataclass(frozen=True, slots=True, order=True)
class Scope:
    """One `system/` scope: a resource type (or `*`) and a set of permissions."""

    resource: str
    permissions: str

    def __str__(self) -> str:
        return f"system/{self.resource}.{self.permissions}"

    def allows(self, resource: str, permission: str) -> bool:
        """Whether this scope permits `permission` (one of c r u d s) on `resource`."""
        return self.resource in ("*", resource) and permission in self.permissions


def parse_scope(text: str) -> Scope:
    """Parse one scope string; raise `ScopeError` saying what is wrong."""
    match = _SCOPE.fullmatch(text)
    if match is None:
        raise ScopeError(f"{text!r} is not a system/<Type>.<permissions> scope")
    resource, perms = match["type"], match["perms"]
    if resource != "*" and resource not in RESOURCE_TYPES:
        raise ScopeError(f"{text!r} names an unknown resource type {resource!r}")
    perms = _V1.get(perms, perms)
    if not _is_subsequence(perms, PERMISSIONS) or not perms:
        raise ScopeError(
            f"{text!r}: permissions must be a subsequence of 'cruds', 'read' or 'write'"
        )
    return Scope(resource, perms)


def parse_scopes(texts: Iterable[str]) -> list[Scope]:
    """Parse several scopes, keeping their order."""
    return [parse_scope(text) for text in texts]


def intersect(requested: Iterable[Scope], allowed: Iterable[Scope]) -> list[Scope]:
    """The scopes both requested and allowed, in v2 form (e.g. `system/*.read` against
    `system/Patient.cruds` gives `system/Patient.rs`), merged per resource type."""
    granted: dict[str, set[str]] = {}
    allowed_list = list(allowed)
    for want in requested:
        for have in allowed_list:
            if want.resource == "*":
                resource = have.resource
            elif have.resource in ("*", want.resource):
                resource = want.resource
            else:
                continue
            common = set(want.permissions) & set(have.permissions)
            if common:
                granted.setdefault(resource, set()).update(common)
    return [
        Scope(resource, "".join(p for p in PERMISSIONS if p in perms))
        for resource, perms in sorted(granted.items())
    ]


def _is_subsequence(perms: str, of: str) -> bool:
    position = 0
    for letter in perms:
        position = of.find(letter, position)
        if position < 0:
            return False
        position += 1
    return len(set(perms)) == len(perms)
