"""Patient: conditional create by NHS number, visibility, versioning conventions."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.conftest import Tokens
from tests.factories import NHS_SYSTEM, nhs_number, patient_json

LA = "la01-case-system"
OTHER_LA = "la02-case-system"


def _create(
    client: FlaskClient,
    tokens: Tokens,
    who: str,
    body: dict[str, Any],
    conditional: bool = True,
    **headers: str,
) -> Any:
    number = body["identifier"][0]["value"]
    if conditional:
        headers["If-None-Exist"] = f"identifier={NHS_SYSTEM}|{number}"
    return client.post(
        "/fhir/Patient",
        json=body,
        headers={**tokens.headers(who), **headers},
        content_type="application/fhir+json",
    )


def test_create_read_and_repeat(client: FlaskClient, tokens: Tokens) -> None:
    body = patient_json(nhs_number(1), "2015-03-02")
    created = _create(client, tokens, LA, body)
    assert created.status_code == 201
    resource = created.get_json()
    assert resource["meta"]["versionId"] == "1"
    assert created.headers["Location"].endswith(f"/fhir/Patient/{resource['id']}/_history/1")
    assert created.headers["ETag"] == 'W/"1"'
    again = _create(client, tokens, LA, body)
    assert again.status_code == 200
    assert again.get_json()["id"] == resource["id"]
    read = client.get(f"/fhir/Patient/{resource['id']}", headers=tokens.headers(LA))
    assert read.status_code == 200
    assert read.get_json()["identifier"][0]["value"] == body["identifier"][0]["value"]
    not_modified = client.get(
        f"/fhir/Patient/{resource['id']}", headers={**tokens.headers(LA), "If-None-Match": 'W/"1"'}
    )
    assert not_modified.status_code == 304


def test_unrelated_organisation_sees_nothing_until_it_registers(
    client: FlaskClient, tokens: Tokens
) -> None:
    body = patient_json(nhs_number(2), "2012-05-10")
    patient_id = _create(client, tokens, LA, body).get_json()["id"]
    assert (
        client.get(f"/fhir/Patient/{patient_id}", headers=tokens.headers(OTHER_LA)).status_code
        == 404
    )
    search = client.get(
        f"/fhir/Patient?identifier={NHS_SYSTEM}|{body['identifier'][0]['value']}",
        headers=tokens.headers(OTHER_LA),
    )
    assert search.get_json()["total"] == 0
    # Registering it reveals nothing: 201, as for a new NHS number; then it is visible.
    second = _create(client, tokens, OTHER_LA, body)
    assert second.status_code == 201
    assert second.get_json()["id"] == patient_id
    assert (
        client.get(f"/fhir/Patient/{patient_id}", headers=tokens.headers(OTHER_LA)).status_code
        == 200
    )


def test_contradicting_birth_date_is_409(client: FlaskClient, tokens: Tokens) -> None:
    number = nhs_number(3)
    _create(client, tokens, LA, patient_json(number, "2015-03-02"))
    response = _create(client, tokens, OTHER_LA, patient_json(number, "2015-03-03"))
    assert response.status_code == 409


def test_plain_create_of_a_known_number_is_409_for_a_registrant(
    client: FlaskClient, tokens: Tokens
) -> None:
    body = patient_json(nhs_number(4), "2015-03-02")
    _create(client, tokens, LA, body)
    assert _create(client, tokens, LA, body, conditional=False).status_code == 409


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("9434765918", "bad check digit"),
        ("943476591", "9 digits"),
        ("94347659199", "11 digits"),
        ("94347A5919", "letters"),
        ("9434765820", "check digit would be 10"),
    ],
)
def test_invalid_nhs_numbers_are_422(
    client: FlaskClient, tokens: Tokens, value: str, why: str
) -> None:
    response = client.post(
        "/fhir/Patient", json=patient_json(value, "2015-03-02"), headers=tokens.headers(LA)
    )
    assert response.status_code == 422, why
    issue = response.get_json()["issue"][0]
    assert issue["expression"] == ["Patient.identifier[0].value"]


@pytest.mark.parametrize(
    ("change", "expression"),
    [
        (lambda b: b.pop("birthDate"), "Patient.birthDate"),
        (lambda b: b.update(birthDate="2099-01-01"), "Patient.birthDate"),
        (lambda b: b.update(gender="robot"), "Patient.gender"),
        (lambda b: b.update(colour="blue"), "Patient.colour"),
    ],
)
def test_invalid_patients_are_422_and_nothing_is_stored(
    client: FlaskClient, tokens: Tokens, change: Any, expression: str
) -> None:
    body = patient_json(nhs_number(5), "2015-03-02")
    change(body)
    response = client.post("/fhir/Patient", json=body, headers=tokens.headers(LA))
    assert response.status_code == 422
    assert expression in [
        e for issue in response.get_json()["issue"] for e in issue.get("expression", [])
    ]
    search = client.get(
        f"/fhir/Patient?identifier={NHS_SYSTEM}|{body['identifier'][0]['value']}",
        headers=tokens.headers(LA),
    )
    assert search.get_json()["total"] == 0


def test_update_with_if_match_versions_and_history(client: FlaskClient, tokens: Tokens) -> None:
    body = patient_json(nhs_number(6), "2015-03-02")
    resource = _create(client, tokens, LA, body).get_json()
    url = f"/fhir/Patient/{resource['id']}"
    changed = {**resource, "name": [{"given": ["Sam"], "family": "Example"}]}
    stale = client.put(url, json=changed, headers={**tokens.headers(LA), "If-Match": 'W/"7"'})
    assert stale.status_code == 412
    updated = client.put(url, json=changed, headers={**tokens.headers(LA), "If-Match": 'W/"1"'})
    assert updated.status_code == 200
    assert updated.get_json()["meta"]["versionId"] == "2"
    assert updated.headers["Location"].endswith("/_history/2")
    assert client.get(f"{url}/_history/1", headers=tokens.headers(LA)).get_json()["name"][0][
        "given"
    ] == ["Alex"]
    history = client.get(f"{url}/_history", headers=tokens.headers(LA)).get_json()
    assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == ["2", "1"]
    renumbered = {**changed, "identifier": [{"system": NHS_SYSTEM, "value": nhs_number(7)}]}
    assert client.put(url, json=renumbered, headers=tokens.headers(LA)).status_code == 422
    assert client.put(url, json=changed, headers=tokens.headers(OTHER_LA)).status_code == 404


def test_prefer_return_minimal(client: FlaskClient, tokens: Tokens) -> None:
    response = _create(
        client, tokens, LA, patient_json(nhs_number(8), "2015-03-02"), Prefer="return=minimal"
    )
    assert response.status_code == 201
    assert response.get_data() == b""
    assert "/_history/1" in response.headers["Location"]


def test_search_needs_an_identifier(client: FlaskClient, tokens: Tokens) -> None:
    assert client.get("/fhir/Patient", headers=tokens.headers(LA)).status_code == 400
