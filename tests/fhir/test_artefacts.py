"""The FHIR conformance artefacts under `fhir_profiles/` parse as R4 and match `terminology.py`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class

from exchange import codes as terminology
from exchange.codes import CANONICAL_BASE, CODE_SYSTEMS

REPO_ROOT = Path(__file__).resolve().parents[2]
PROFILES_DIR = REPO_ROOT / "fhir_profiles"
FILES = sorted(PROFILES_DIR.glob("*.json"))

Resource = dict[str, Any]
ARTEFACTS: dict[str, Resource] = {p.name: json.loads(p.read_text("utf-8")) for p in FILES}


def _of_type(resource_type: str) -> list[Resource]:
    """Every artefact of one resource type."""
    return [res for res in ARTEFACTS.values() if res["resourceType"] == resource_type]


def _urls(resource_type: str) -> set[str]:
    """The canonical URLs of every artefact of one resource type."""
    return {res["url"] for res in _of_type(resource_type)}


def _walk(node: Any, key: str) -> Iterator[Any]:
    """Every value stored under `key`, at any depth."""
    if isinstance(node, dict):
        for k, value in node.items():
            if k == key:
                yield value
            yield from _walk(value, key)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item, key)


STRUCTURE_URL_CONSTANTS = {
    name: value
    for name, value in vars(terminology).items()
    if name.startswith(("EXT_", "PROFILE_")) and isinstance(value, str)
}


@pytest.mark.parametrize("path", FILES, ids=[path.name for path in FILES])
def test_artefact_is_valid_r4(path: Path) -> None:
    """Each file parses with its R4B model, is named after its id and has a canonical URL."""
    data = ARTEFACTS[path.name]
    model = get_fhir_model_class(data["resourceType"]).model_validate(data)
    assert model.model_dump()["id"] == data["id"]
    assert path.name == f"{data['resourceType']}-{data['id']}.json"
    assert data["url"].startswith(f"{CANONICAL_BASE}/")
    assert data["url"] == f"{CANONICAL_BASE}/{data['resourceType']}/{data['id']}"
    pretty = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    assert path.read_text(encoding="utf-8") == pretty


def test_no_unexpected_code_systems() -> None:
    """Every published CodeSystem belongs to an entry of CODE_SYSTEMS."""
    ids = sorted(res["id"] for res in _of_type("CodeSystem"))
    assert ids == sorted(CODE_SYSTEMS)


@pytest.mark.parametrize("name", sorted(CODE_SYSTEMS))
def test_code_system_matches_enum(name: str) -> None:
    """Exactly one CodeSystem per entry, with exactly the enum's codes."""
    enum: type[StrEnum] = CODE_SYSTEMS[name]
    url = terminology.code_system_url(name)
    matches = [res for res in _of_type("CodeSystem") if res["url"] == url]
    assert len(matches) == 1, f"{len(matches)} CodeSystems with url {url}"
    code_system = matches[0]
    codes = [concept["code"] for concept in code_system["concept"]]
    assert len(codes) == len(set(codes)), "duplicate codes"
    assert set(codes) == {member.value for member in enum}
    assert code_system["count"] == len(codes)
    assert code_system["content"] == "complete"
    assert all(c.get("display") and c.get("definition") for c in code_system["concept"])


@pytest.mark.parametrize("name", sorted(CODE_SYSTEMS))
def test_value_set_covers_code_system(name: str) -> None:
    """Each CodeSystem has a ValueSet of the same name including the whole system."""
    url = f"{CANONICAL_BASE}/ValueSet/{name}"
    value_sets = [res for res in _of_type("ValueSet") if res["url"] == url]
    assert len(value_sets) == 1
    include = value_sets[0]["compose"]["include"]
    assert include == [{"system": terminology.code_system_url(name)}]


@pytest.mark.parametrize("constant", sorted(STRUCTURE_URL_CONSTANTS))
def test_structure_definition_published(constant: str) -> None:
    """Every extension and profile URL constant has a StructureDefinition."""
    assert STRUCTURE_URL_CONSTANTS[constant] in _urls("StructureDefinition")


def test_bindings_resolve() -> None:
    """Every binding to one of this service's value sets names a published ValueSet."""
    value_sets = _urls("ValueSet")
    bindings = [
        binding["valueSet"]
        for res in [*_of_type("StructureDefinition"), *_of_type("OperationDefinition")]
        for binding in _walk(res, "binding")
        if "valueSet" in binding
    ]
    assert bindings
    ours = {url for url in bindings if url.startswith(CANONICAL_BASE)}
    assert not ours - value_sets


def test_profile_references_resolve() -> None:
    """Every profile or target profile of this service names a published StructureDefinition."""
    structures = _urls("StructureDefinition")
    referenced = {
        url
        for key in ("profile", "targetProfile")
        for urls in _walk(list(ARTEFACTS.values()), key)
        for url in urls
        if url.startswith(CANONICAL_BASE)
    }
    assert not referenced - structures


@pytest.mark.parametrize(
    ("base", "code", "expression"),
    [
        ("AuditEvent", "purpose", "AuditEvent.agent.purposeOfUse"),
        ("Task", "due", "Task.restriction.period.end"),
    ],
)
def test_custom_search_parameter(base: str, code: str, expression: str) -> None:
    """The custom search parameters api.md promises are published."""
    found = [
        (res["base"], res["expression"])
        for res in _of_type("SearchParameter")
        if res["code"] == code and base in res["base"]
    ]
    assert found == [([base], expression)]
