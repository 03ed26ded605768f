"""The CapabilityStatement tells the truth: every type the API serves is declared, and every
search parameter it declares is accepted."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import Tokens

#: A value each kind of search parameter accepts (parsed, even if it matches nothing).
_VALUES = {
    "token": "x",
    "reference": "Patient/00000000-0000-0000-0000-000000000000",
    "date": "2026-11-01",
    "uri": "https://fhir.send-exchange.example/x",
    "string": "x",
}
#: Parameters whose values must be of their own kind (an NHS number, an ODS code, a code).
_SPECIFIC = {
    "identifier": "https://fhir.nhs.uk/Id/nhs-number|9000000009",
    "patient.identifier": "https://fhir.nhs.uk/Id/nhs-number|9000000009",
    "owner": "PRV01",
    "requester": "LA01",
    "custodian": "PRV01",
    "author": "PRV01",
    "signer": "PRV01",
    "agent": "LA01",
    "status": "active",
    "code": "ehcna-health-advice",
    "business-status": "overdue",
    "type": "la",
    "category": "http://loinc.org|59284-0",
    "related": "Task/00000000-0000-0000-0000-000000000000",
    "_tag": "https://fhir.send-exchange.example/CodeSystem/consent-review|contested",
    "outcome": "0",
    "action": "R",
    "purpose": "ehcna-advice",
    "entity": "Patient/00000000-0000-0000-0000-000000000000",
    "subtype": "read",
}
_STATUS = {
    "Task": "requested",
    "DocumentReference": "current",
    "Contract": "executed",
    "Organization": None,
    "Consent": "active",
}
_TYPE = {"DocumentReference": "health-advice", "AuditEvent": "rest", "Organization": "la"}


def _statement(client: FlaskClient) -> dict[str, Any]:
    return dict(client.get("/fhir/metadata").get_json())


def test_the_statement_names_itself_and_lists_the_public_conformance_types(
    client: FlaskClient,
) -> None:
    statement = _statement(client)
    assert statement["url"] == "https://fhir.send-exchange.example/CapabilityStatement/exchange"
    assert statement["name"] == "SendHealthAdviceExchange"
    declared = {entry["type"] for entry in statement["rest"][0]["resource"]}
    assert {
        "CodeSystem",
        "ValueSet",
        "StructureDefinition",
        "SearchParameter",
        "OperationDefinition",
    } <= declared


def test_every_served_type_is_declared(app: Flask, client: FlaskClient) -> None:
    served = {
        rule.rule.split("/")[2]
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/fhir/") and rule.rule.split("/")[2][:1].isupper()
    }
    declared = {entry["type"] for entry in _statement(client)["rest"][0]["resource"]}
    assert served == declared


def _declared_searches(client: FlaskClient) -> list[tuple[str, str, str]]:
    return [
        (entry["type"], param["name"], param["type"])
        for entry in _statement(client)["rest"][0]["resource"]
        for param in entry.get("searchParam", [])
    ]


def test_every_declared_search_parameter_is_accepted(client: FlaskClient, tokens: Tokens) -> None:
    headers = tokens.headers("la01-everything")
    for resource_type, name, kind in _declared_searches(client):
        value = _SPECIFIC.get(name, _VALUES.get(kind, "x"))
        if name == "status":
            value = _STATUS.get(resource_type) or value
        if name == "type":
            value = _TYPE.get(resource_type, value)
        if name == "identifier" and resource_type == "Organization":
            value = "https://fhir.nhs.uk/Id/ods-organization-code|PRV01"
        response = client.get(f"/fhir/{resource_type}", query_string={name: value}, headers=headers)
        assert response.status_code == 200, (resource_type, name, value, response.get_json())


@pytest.mark.parametrize(
    "resource_type",
    ["CodeSystem", "ValueSet", "StructureDefinition", "SearchParameter", "OperationDefinition"],
)
def test_conformance_types_are_read_and_searched_by_url(
    client: FlaskClient, resource_type: str
) -> None:
    found = client.get(f"/fhir/{resource_type}").get_json()
    assert found["total"] > 0
    first = found["entry"][0]["resource"]
    assert (
        client.get(f"/fhir/{resource_type}", query_string={"url": first["url"]}).get_json()["total"]
        == 1
    )
    assert client.get(f"/fhir/{resource_type}/{first['id']}").status_code == 200
