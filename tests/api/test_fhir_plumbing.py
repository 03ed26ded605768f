"""The `/fhir` blueprint: negotiation, OperationOutcome for every error, conformance."""

from __future__ import annotations

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.operationoutcome import OperationOutcome
from flask import Flask
from flask.testing import FlaskClient

from exchange import codes


def assert_outcome(response: object, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status  # type: ignore[attr-defined]
    assert response.mimetype == "application/fhir+json"  # type: ignore[attr-defined]
    body = response.get_json()  # type: ignore[attr-defined]
    OperationOutcome.model_validate(body)
    assert body["issue"][0]["code"] == code
    assert "Traceback" not in body["issue"][0]["diagnostics"]
    return body  # type: ignore[no-any-return]


def test_metadata_is_a_valid_r4_capability_statement(client: FlaskClient) -> None:
    response = client.get("/fhir/metadata")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/fhir+json; charset=utf-8"
    statement = response.get_json()
    CapabilityStatement.model_validate(statement)
    assert statement["fhirVersion"] == "4.0.1"
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    assert {"Organization", "Contract"} <= set(resources)
    assert resources["Contract"]["supportedProfile"] == [codes.PROFILE_DATA_SHARING_AGREEMENT]
    oauth = statement["rest"][0]["security"]["extension"][0]["extension"]
    assert {"url": "token", "valueUri": "http://127.0.0.1:8000/oauth2/token"} in oauth


def test_unknown_path_is_an_operation_outcome_404(client: FlaskClient) -> None:
    assert_outcome(client.get("/fhir/Nothing/here"), 404, "not-found")


def test_wrong_method_is_an_operation_outcome_405(client: FlaskClient) -> None:
    response = client.delete("/fhir/metadata")
    assert_outcome(response, 405, "not-supported")
    assert "GET" in response.headers["Allow"]


def test_server_error_is_an_operation_outcome_without_details(app: Flask) -> None:
    @app.get("/fhir/boom")
    def boom() -> None:
        raise RuntimeError("secret 9434765919 in a message")

    response = app.test_client().get("/fhir/boom")
    body = assert_outcome(response, 500, "exception")
    assert "9434765919" not in response.get_data(as_text=True)
    assert "RuntimeError" not in response.get_data(as_text=True)
    assert body["issue"][0]["diagnostics"] == "the server could not complete the request"  # type: ignore[index]


@pytest.mark.parametrize("accept", ["application/fhir+xml", "text/html"])
def test_non_json_accept_is_406(client: FlaskClient, accept: str) -> None:
    assert_outcome(client.get("/fhir/metadata", headers={"Accept": accept}), 406, "not-supported")


@pytest.mark.parametrize("accept", ["application/fhir+json", "application/json", "*/*"])
def test_json_accept_is_served(client: FlaskClient, accept: str) -> None:
    assert client.get("/fhir/metadata", headers={"Accept": accept}).status_code == 200


def test_xml_format_is_406(client: FlaskClient) -> None:
    assert_outcome(client.get("/fhir/metadata?_format=xml"), 406, "not-supported")


def test_code_system_search_by_url_and_read(client: FlaskClient) -> None:
    url = codes.code_system_url("purpose")
    response = client.get("/fhir/CodeSystem", query_string={"url": url})
    assert response.status_code == 200
    bundle = response.get_json()
    Bundle.model_validate(bundle)
    assert bundle["total"] == 1
    code_system = bundle["entry"][0]["resource"]
    assert {c["code"] for c in code_system["concept"]} == {p.value for p in codes.Purpose}
    read = client.get("/fhir/CodeSystem/purpose")
    assert read.get_json()["url"] == url
    assert_outcome(client.get("/fhir/CodeSystem/no-such-thing"), 404, "not-found")


def test_structure_definitions_and_search_parameters_are_served(client: FlaskClient) -> None:
    profile = client.get(
        "/fhir/StructureDefinition", query_string={"url": codes.PROFILE_CONSENT}
    ).get_json()
    assert profile["total"] == 1
    purpose = client.get("/fhir/SearchParameter/AuditEvent-purpose").get_json()
    assert purpose["code"] == "purpose"


def test_unknown_search_parameter_is_400_unless_lenient(client: FlaskClient) -> None:
    assert_outcome(client.get("/fhir/CodeSystem?colour=red"), 400, "not-supported")
    lenient = client.get(
        "/fhir/CodeSystem?colour=red", headers={"Prefer": "handling=lenient"}
    ).get_json()
    outcomes = [e["resource"] for e in lenient["entry"] if e["search"]["mode"] == "outcome"]
    assert "colour" in outcomes[0]["issue"][0]["diagnostics"]
    assert lenient["total"] == len(codes.CODE_SYSTEMS)


def test_registry_resources_need_a_token(client: FlaskClient) -> None:
    for path in ("/fhir/Organization", "/fhir/Contract", "/fhir/Organization/x"):
        response = client.get(path)
        assert_outcome(response, 401, "login")
        assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
