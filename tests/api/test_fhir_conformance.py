"""Everything the API emits is FHIR R4 (issue 11): each AuditEvent, Consent, Task,
DocumentReference, Contract, MeasureReport and Bundle parses with fhir.resources' R4B
models, and no element is empty (ele-1: no empty string, list or object anywhere)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class
from flask import Flask
from flask.testing import FlaskClient

from exchange.codes import PROFILE_ADVICE_REQUEST, PROFILE_CONSENT, PROFILE_HEALTH_ADVICE
from tests.conftest import Tokens
from tests.factories import NHS_SYSTEM
from tests.scenario import LA, PROVIDER, Scenario

CHECKED = {
    "AuditEvent",
    "Consent",
    "Task",
    "DocumentReference",
    "Contract",
    "MeasureReport",
    "Bundle",
    "Patient",
    "Organization",
    "Parameters",
    "OperationOutcome",
    "Binary",
    "CapabilityStatement",
}
PROFILED = {
    "Consent": PROFILE_CONSENT,
    "Task": PROFILE_ADVICE_REQUEST,
    "DocumentReference": PROFILE_HEALTH_ADVICE,
}


@pytest.fixture
def emitted(app: Flask) -> list[dict[str, Any]]:
    """Every FHIR JSON body the app answers with during the test."""
    bodies: list[dict[str, Any]] = []

    def keep(response: Any) -> Any:
        if (
            response.mimetype == "application/fhir+json"
            and not response.is_streamed
            and response.get_data()
        ):
            bodies.append(json.loads(response.get_data()))
        return response

    app.after_request_funcs.setdefault(None, []).append(keep)
    return bodies


def _empties(node: Any, path: str) -> Iterator[str]:
    if node in ("", [], {}) or node is None:
        yield path
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _empties(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _empties(value, f"{path}[{index}]")


def _resources(body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield body
    for entry in body.get("entry", []) if body.get("resourceType") == "Bundle" else []:
        if "resource" in entry:
            yield from _resources(entry["resource"])


def test_everything_the_api_emits_is_r4_without_empty_elements(
    client: FlaskClient, tokens: Tokens, emitted: list[dict[str, Any]]
) -> None:
    world = Scenario(client, tokens)
    child = world.child()
    consent = world.consent(child)
    task = world.request(child)
    document = world.upload(child, task)
    for path, who in (
        (f"/fhir/Patient/{child.id}", LA),
        (f"/fhir/Patient/{child.id}/_history", LA),
        (f"/fhir/Consent/{consent['id']}", LA),
        (f"/fhir/Consent?patient.identifier={NHS_SYSTEM}|{child.number}", LA),
        (
            f"/fhir/Consent/$evaluate?patient.identifier={NHS_SYSTEM}|{child.number}&recipient=PRV01"
            "&purpose=ehcna-advice",
            LA,
        ),
        (f"/fhir/Task/{task['id']}", PROVIDER),
        (f"/fhir/Task/{task['id']}/_history", PROVIDER),
        ("/fhir/Task?_count=5", LA),
        (f"/fhir/DocumentReference/{document['id']}", LA),
        (f"/fhir/DocumentReference?patient=Patient/{child.id}", LA),
        ("/fhir/Contract", LA),
        ("/fhir/Organization", LA),
        ("/fhir/AuditEvent", "la01-ig"),
        ("/fhir/AuditEvent?_count=3", "prv01-ig"),
        ("/fhir/DocumentReference/00000000-0000-0000-0000-000000000000", LA),
        ("/fhir/metadata", LA),
    ):
        assert world.get(path, who).status_code in (200, 404), path
    seen: set[str] = set()
    for body in emitted:
        for resource in _resources(body):
            kind = resource["resourceType"]
            seen.add(kind)
            if kind not in CHECKED:
                continue
            get_fhir_model_class(kind).model_validate(resource)
            assert list(_empties(resource, kind)) == [], kind
            if kind in PROFILED:
                assert resource["meta"]["profile"] == [PROFILED[kind]], kind
                assert list(resource)[:3] == ["resourceType", "id", "meta"], kind
    assert {
        "AuditEvent",
        "Consent",
        "Task",
        "DocumentReference",
        "Contract",
        "Bundle",
        "Parameters",
    } <= seen
