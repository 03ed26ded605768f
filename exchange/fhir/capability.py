"""The CapabilityStatement, built from what the running service registers.

Each FHIR feature declares the resource types it serves (interactions, search parameters,
profile, operations) in `CapabilityRegistry`; `GET /fhir/metadata` renders that, so the
statement grows with the API instead of being written by hand beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from exchange import __version__
from exchange.codes import CANONICAL_BASE


@dataclass(frozen=True)
class SearchParam:
    """A search parameter the service supports for a resource type."""

    name: str
    type: str
    definition: str | None = None
    documentation: str | None = None


@dataclass(frozen=True)
class ResourceCapability:
    """What the service does with one resource type."""

    type: str
    interactions: tuple[str, ...]
    search_params: tuple[SearchParam, ...] = ()
    profile: str | None = None
    operations: tuple[tuple[str, str], ...] = ()  # (name, OperationDefinition canonical)
    versioning: str = "versioned-update"
    conditional_create: bool = False


@dataclass
class CapabilityRegistry:
    """Resource capabilities registered by the API's FHIR views."""

    resources: dict[str, ResourceCapability] = field(default_factory=dict)

    def add(self, capability: ResourceCapability) -> None:
        """Register (or replace) a resource type's capability."""
        self.resources[capability.type] = capability

    def statement(
        self,
        base_url: str,
        published: datetime,
        security: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """The CapabilityStatement (R4) describing the registered resources."""
        rest: dict[str, Any] = {
            "mode": "server",
            "resource": [
                _resource_entry(capability) for _, capability in sorted(self.resources.items())
            ],
        }
        if security is not None:
            rest["security"] = security
        return {
            "resourceType": "CapabilityStatement",
            "url": f"{CANONICAL_BASE}/CapabilityStatement/exchange",
            "version": __version__,
            "name": "SendHealthAdviceExchange",
            "title": "SEND health-advice exchange",
            "status": "active",
            "date": published.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "publisher": "SEND health-advice exchange",
            "kind": "instance",
            "software": {"name": "exchange", "version": __version__},
            "implementation": {
                "description": "SEND health-advice exchange",
                "url": f"{base_url}/fhir",
            },
            "fhirVersion": "4.0.1",
            "format": ["application/fhir+json", "json"],
            "patchFormat": ["application/json-patch+json"],
            "rest": [rest],
        }


def _resource_entry(capability: ResourceCapability) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "type": capability.type,
        "interaction": [{"code": code} for code in capability.interactions],
        "versioning": capability.versioning,
        "readHistory": "vread" in capability.interactions,
        "updateCreate": False,
    }
    if capability.profile:
        entry["supportedProfile"] = [capability.profile]
    if capability.conditional_create:
        entry["conditionalCreate"] = True
    if capability.search_params:
        entry["searchParam"] = [
            {
                "name": param.name,
                "type": param.type,
                **({"definition": param.definition} if param.definition else {}),
                **({"documentation": param.documentation} if param.documentation else {}),
            }
            for param in capability.search_params
        ]
    if capability.operations:
        entry["operation"] = [
            {"name": name, "definition": definition} for name, definition in capability.operations
        ]
    return entry
