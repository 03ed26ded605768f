"""This service's own conformance artefacts (CodeSystems, ValueSets, StructureDefinitions,
SearchParameters, OperationDefinitions), loaded from `fhir_profiles/` once at start-up."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

ARTEFACTS_DIR: Final = Path(__file__).resolve().parents[2] / "fhir_profiles"
ARTEFACT_TYPES: Final = (
    "CodeSystem",
    "ValueSet",
    "StructureDefinition",
    "SearchParameter",
    "OperationDefinition",
)


@dataclass(frozen=True)
class Artefacts:
    """The loaded artefacts, by type and id."""

    by_type: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    @classmethod
    def load(cls, directory: Path = ARTEFACTS_DIR) -> Artefacts:
        """Read every `*.json` artefact in `directory`."""
        by_type: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in ARTEFACT_TYPES}
        for path in sorted(directory.glob("*.json")):
            resource = json.loads(path.read_text(encoding="utf-8"))
            kind = resource.get("resourceType")
            if kind not in by_type:
                raise ValueError(f"{path.name}: unexpected resourceType {kind!r}")
            by_type[kind][resource["id"]] = resource
        return cls(by_type)

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any] | None:
        """One artefact by id, or None."""
        return self.by_type.get(resource_type, {}).get(resource_id)

    def search(self, resource_type: str, url: str | None = None) -> list[dict[str, Any]]:
        """Artefacts of a type, optionally only the one with a canonical `url`."""
        resources: Iterable[dict[str, Any]] = self.by_type.get(resource_type, {}).values()
        if url is not None:
            resources = [r for r in resources if r.get("url") == url.split("|", 1)[0]]
        return list(resources)
