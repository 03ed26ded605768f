"""Regression tests for what an attacker found (a hostile but registered organisation),
each the request that exploited it, over HTTP through the real app."""

from __future__ import annotations

import base64
import json
import zipfile
from io import BytesIO
from typing import Any
from urllib.parse import quote

import pytest
from flask.testing import FlaskClient
from sqlalchemy import event, select

from exchange.audit.models import AuditRecord
from exchange.db import Database
from tests.conftest import Tokens
from tests.factories import (
    CB,
    NHS_SYSTEM,
    consent_json,
    docx_bytes,
    nhs_number,
    patient_json,
    pdf_bytes,
    task_json,
)
from tests.scenario import (
    ICB,
    LA,
    OTHER_LA,
    OTHER_PROVIDER,
    PROVIDER,
    UNAGREED_LA,
    Scenario,
    document_json,
)

PUBLIC_BASE = "http://127.0.0.1:8000"
XHTML = "http://www.w3.org/1999/xhtml"


@pytest.fixture
def world(client: FlaskClient, tokens: Tokens) -> Scenario:
    return Scenario(client, tokens)


def _codes(response: Any) -> list[str]:
    return [
        c["code"]
        for issue in response.get_json()["issue"]
        for c in issue.get("details", {}).get("coding", [])
    ]


def _expressions(response: Any) -> list[str]:
    return [e for issue in response.get_json()["issue"] for e in issue.get("expression", [])]


def _audit_rows(db: Database, **where: Any) -> list[AuditRecord]:
    with db.transaction() as session:
        query = select(AuditRecord).where(*(getattr(AuditRecord, k) == v for k, v in where.items()))
        return list(session.scalars(query.order_by(AuditRecord.id)))


# --- High: patient takeover by NHS number and birth date ---------------------------------


def test_registering_a_child_needs_an_agreement(world: Scenario) -> None:
    number = nhs_number(81_001)
    world.child(number=number)
    response = world.post(
        "/fhir/Patient",
        UNAGREED_LA,
        patient_json(number, "2015-03-02"),
        **{"If-None-Exist": f"identifier={NHS_SYSTEM}|{number}"},
    )
    assert response.status_code == 403
    assert _codes(response) == ["no-agreement"]
    assert (
        world.get(f"/fhir/Patient?identifier={NHS_SYSTEM}|{number}", UNAGREED_LA).get_json()[
            "total"
        ]
        == 0
    )


def test_a_second_registrant_sees_only_the_identity_it_gave(world: Scenario) -> None:
    child = world.child()
    first = world.get(f"/fhir/Patient/{child.id}", LA).get_json()
    for given in ("Sam", "Jo"):  # the first LA updates its record twice: version 3
        assert (
            world.put(
                f"/fhir/Patient/{child.id}", LA, {**first, "name": [{"given": [given]}]}
            ).status_code
            == 200
        )
    second = world.post(
        "/fhir/Patient",
        OTHER_LA,
        patient_json(child.number, child.born, given="Robin"),
        **{"If-None-Exist": f"identifier={NHS_SYSTEM}|{child.number}"},
    )
    assert second.status_code == 201  # as for any organisation's first registration
    assert second.headers["ETag"] == 'W/"1"'  # no version counting another's changes
    body = second.get_json()
    assert body["id"] == child.id
    assert body["name"] == [{"given": ["Robin"], "family": "Example"}]
    assert "Jo" not in json.dumps(body) and "Alex" not in json.dumps(body)
    read = world.get(f"/fhir/Patient/{child.id}", OTHER_LA).get_json()
    assert read["name"][0]["given"] == ["Robin"] and read["meta"]["versionId"] == "1"
    history = world.get(f"/fhir/Patient/{child.id}/_history", OTHER_LA).get_json()
    assert [e["resource"]["name"][0]["given"] for e in history["entry"]] == [["Robin"]]
    assert world.get(f"/fhir/Patient/{child.id}/_history/2", OTHER_LA).status_code == 404
    # The first registrant still sees its own record, untouched by the second.
    assert world.get(f"/fhir/Patient/{child.id}", LA).get_json()["name"][0]["given"] == ["Jo"]


def test_only_the_first_registrant_updates_and_a_birth_date_correction_is_flagged(
    world: Scenario, db: Database
) -> None:
    child = world.child(born="2012-05-10")
    world.post("/fhir/Patient", OTHER_LA, patient_json(child.number, child.born))
    theirs = world.get(f"/fhir/Patient/{child.id}", OTHER_LA).get_json()
    takeover = world.put(
        f"/fhir/Patient/{child.id}", OTHER_LA, {**theirs, "birthDate": "1993-05-10"}
    )
    assert takeover.status_code == 403
    assert world.get(f"/fhir/Patient/{child.id}", LA).get_json()["birthDate"] == "2012-05-10"
    mine = world.get(f"/fhir/Patient/{child.id}", LA).get_json()
    corrected = world.put(f"/fhir/Patient/{child.id}", LA, {**mine, "birthDate": "2012-05-11"})
    assert corrected.status_code == 200
    flagged = _audit_rows(db, review_reason="birth-date-correction")
    assert len(flagged) == 1
    payload = json.loads(flagged[0].payload)
    details = {d["type"]: d["valueString"] for e in payload["entity"] for d in e.get("detail", [])}
    assert (details["birth-date-before"], details["birth-date-after"]) == (
        "2012-05-10",
        "2012-05-11",
    )
    assert payload["meta"]["tag"][0]["code"] == "birth-date-correction"
    # Every registrant's view carries the corrected date (consent decisions depend on it).
    assert world.get(f"/fhir/Patient/{child.id}", OTHER_LA).get_json()["birthDate"] == "2012-05-11"


@pytest.mark.parametrize(
    ("element", "value"),
    [
        ("address", [{"line": ["1 Example Street"], "postalCode": "EX1 1AA"}]),
        ("telecom", [{"system": "phone", "value": "01632 960000"}]),
        ("contact", [{"name": {"family": "Parent"}}]),
        ("photo", [{"contentType": "image/png", "data": "iVBORw0KGgo="}]),
        ("text", {"status": "generated", "div": f'<div xmlns="{XHTML}">Alex</div>'}),
        (
            "identifier",
            [{"system": NHS_SYSTEM, "value": "9000000009"}, {"system": "urn:local", "value": "X1"}],
        ),
    ],
)
def test_a_patient_holds_only_nhs_number_birth_date_name_and_gender(
    world: Scenario, element: str, value: Any
) -> None:
    body = {**patient_json(nhs_number(81_002), "2015-03-02"), element: value}
    response = world.post("/fhir/Patient", LA, body)
    assert response.status_code == 422
    assert any(e.startswith(f"Patient.{element}") for e in _expressions(response))
    assert (
        world.get(f"/fhir/Patient?identifier={NHS_SYSTEM}|{nhs_number(81_002)}", LA).get_json()[
            "total"
        ]
        == 0
    )


def test_registering_a_child_is_no_licence_to_read_its_consents(world: Scenario) -> None:
    child = world.child()
    consent = world.consent(child)
    world.post("/fhir/Patient", OTHER_LA, patient_json(child.number, child.born))
    assert world.get(f"/fhir/Consent/{consent['id']}", OTHER_LA).status_code == 404
    assert world.get(f"/fhir/Consent/{consent['id']}/_history", OTHER_LA).status_code == 404
    search = world.get(
        f"/fhir/Consent?patient.identifier={NHS_SYSTEM}|{child.number}", OTHER_LA
    ).get_json()
    assert search["total"] == 0 and "contained" not in json.dumps(search)
    # A care relationship (the owner of a Task for the child) does read them.
    world.request(child)
    assert world.get(f"/fhir/Consent/{consent['id']}", PROVIDER).status_code == 200


# --- High: the previous owner still read documents after forwarding ---------------------


def test_the_previous_owner_loses_the_documents_after_forwarding(world: Scenario) -> None:
    child = world.child()
    world.consent(child)
    task = world.request(child)
    world.forward(task, "PRV02")
    document = world.upload(child, task, who=OTHER_PROVIDER)
    binary = document["content"][0]["attachment"]["url"]
    assert world.get(f"/fhir/DocumentReference/{document['id']}", LA).status_code == 200
    assert world.get(f"/fhir/DocumentReference/{document['id']}", PROVIDER).status_code == 404
    assert world.get(f"/fhir/{binary}", PROVIDER).status_code == 404
    assert (
        world.get(f"/fhir/DocumentReference?patient=Patient/{child.id}", PROVIDER).get_json()[
            "total"
        ]
        == 0
    )
    # It keeps the Task and the Patient.
    assert world.get(f"/fhir/Task/{task['id']}", PROVIDER).status_code == 200
    assert world.get(f"/fhir/Patient/{child.id}", PROVIDER).status_code == 200


# --- Medium: consent restrictions stored but ignored -------------------------------------


@pytest.mark.parametrize(
    ("element", "value"),
    [
        ("dataPeriod", {"start": "2026-01-01", "end": "2026-06-30"}),
        ("class", [{"system": "http://hl7.org/fhir/resource-types", "code": "DocumentReference"}]),
        (
            "code",
            [{"coding": [{"system": f"{CB}/CodeSystem/document-type", "code": "health-advice"}]}],
        ),
        (
            "securityLabel",
            [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "N"}],
        ),
        ("data", [{"meaning": "instance", "reference": {"reference": "DocumentReference/x"}}]),
        ("action", None),
    ],
)
def test_consent_restrictions_the_decision_does_not_apply_are_refused(
    world: Scenario, element: str, value: Any
) -> None:
    child = world.child()
    body = consent_json(child.id, "2026-10-01T10:00:00+01:00")
    if value is None:
        del body["provision"][element]
    else:
        body["provision"][element] = value
    response = world.post("/fhir/Consent", LA, body)
    assert response.status_code == 422
    assert f"Consent.provision.{element}" in _expressions(response)


# --- Medium: contested consents -----------------------------------------------------------


def test_a_reversal_by_another_organisation_is_tagged_contested_and_flagged(
    world: Scenario, db: Database
) -> None:
    child = world.child(born="2012-05-10")
    world.consent(
        child,
        "2026-10-01T10:00:00+01:00",
        maker="self",
        provision="deny",
        gillick=("competent", "2026-09-20"),
    )
    world.request(child)  # LA01 asks PRV01
    world.post("/fhir/Patient", ICB, patient_json(child.number, child.born))
    permit = world.consent(
        child,
        "2026-10-15T10:00:00+01:00",
        who=ICB,
        maker="self",
        gillick=("competent", "2026-10-14"),
    )
    assert {"system": f"{CB}/CodeSystem/consent-review", "code": "contested"} in [
        {k: t[k] for k in ("system", "code")} for t in permit["meta"]["tag"]
    ]
    flagged = _audit_rows(db, review_reason="contested-consent")
    assert len(flagged) == 1 and flagged[0].agent_org == "ICB01"
    assert json.loads(flagged[0].payload)["meta"]["tag"][0]["code"] == "contested-consent"
    contested = world.get(
        f"/fhir/Consent?_tag={CB}/CodeSystem/consent-review|contested", ICB
    ).get_json()
    assert [e["resource"]["id"] for e in contested["entry"]] == [permit["id"]]
    # The same organisation changing its own mind is not contested.
    own = world.consent(
        child,
        "2026-10-20T10:00:00+01:00",
        who=ICB,
        maker="self",
        provision="deny",
        gillick=("competent", "2026-10-14"),
    )
    assert "contested" not in json.dumps(own.get("meta", {}))


# --- Medium: one NHS number, several Patients; ODS codes alike --------------------------


# Fullwidth and Arabic-Indic digits, a trailing newline, a leading space.
@pytest.mark.parametrize(
    "number",
    [
        "\uff19\uff19\uff19\uff10\uff10\uff15\uff12\uff10\uff11\uff18",
        "\u0669\u0669\u0669\u0660\u0660\u0665\u0662\u0660\u0661\u0668",
        "9990052018\n",
        " 9990052018",
    ],
)
def test_nhs_numbers_are_ten_ascii_digits_and_nothing_else(world: Scenario, number: str) -> None:
    world.child(number="9990052018")
    created = world.post("/fhir/Patient", LA, patient_json(number, "2015-03-02"))
    assert created.status_code == 422
    value = quote(f"{NHS_SYSTEM}|{number}")
    for path in (
        f"/fhir/Patient?identifier={value}",
        f"/fhir/Consent?patient.identifier={value}",
        f"/fhir/DocumentReference?patient.identifier={value}",
        f"/fhir/Task?patient.identifier={value}",
        f"/fhir/Consent/$evaluate?patient.identifier={value}&recipient=PRV01&purpose=ehcna-advice",
    ):
        assert world.get(path, LA).status_code == 400, path


@pytest.mark.parametrize("ods", ["PRV01\n", "\uff30\uff32\uff36\uff10\uff11", "prv01", "PRV01 "])
def test_ods_codes_are_parsed_whole_and_ascii(world: Scenario, ods: str) -> None:
    child = world.child()
    response = world.post("/fhir/Task", LA, task_json(child.id, ods))
    assert response.status_code == 422
    value = quote(f"https://fhir.nhs.uk/Id/ods-organization-code|{ods}")
    assert world.get(f"/fhir/Task?owner={value}", LA).status_code == 400
    assert world.get(f"/fhir/Organization?identifier={value}", LA).status_code == 400


# --- Medium: a zip bomb as DOCX, an executable behind %PDF- -------------------------------


def _zip_bomb() -> bytes:
    buffer = BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", b"\0" * (64 * 1024 * 1024))
    return buffer.getvalue()


DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
ELF = b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 64


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (_zip_bomb(), DOCX, 415),
        (b"PK\x03\x04" + bytes(2000), DOCX, 415),  # zip magic, no readable directory
        (docx_bytes().replace(b"word/document.xml", b"word/other.xmlxx"), DOCX, 415),
        (b"%PDF-1.7\n" + ELF, "application/pdf", 415),
        (docx_bytes(), DOCX, 201),
        (pdf_bytes(5000), "application/pdf", 201),
    ],
    ids=["zip-bomb", "no-directory", "not-word", "pdf-then-elf", "docx", "pdf"],
)
def test_document_content_is_what_it_claims_to_be(
    world: Scenario, content: bytes, content_type: str, status: int
) -> None:
    response = world.post("/fhir/Binary", PROVIDER, data=content, **{"Content-Type": content_type})
    assert response.status_code == status, response.get_json()


# --- Medium: unbounded bodies (chunked bodies are in test_attacks_served) -----------------


def test_an_oversized_json_body_is_413(world: Scenario) -> None:
    body = json.dumps(
        {**patient_json(nhs_number(81_003), "2015-03-02"), "padding": "x" * (1024 * 1024)}
    )
    response = world.client.post(
        "/fhir/Patient",
        data=body,
        headers={**world.auth(LA), "Content-Type": "application/fhir+json"},
    )
    assert response.status_code == 413
    assert response.get_json()["resourceType"] == "OperationOutcome"


def test_an_oversized_token_request_is_413_before_authentication(
    client: FlaskClient, world: Scenario
) -> None:
    response = client.post(
        "/oauth2/token", data={"grant_type": "client_credentials", "pad": "x" * 100_000}
    )
    assert response.status_code == 413


def test_inline_content_may_be_up_to_10_mib(world: Scenario) -> None:
    child = world.child()
    world.consent(child)
    task = world.request(child)
    content = pdf_bytes(9 * 1024 * 1024)
    response = world.post(
        "/fhir/DocumentReference", PROVIDER, document_json(child, task["id"], data=content)
    )
    assert response.status_code == 201, response.get_json()
    url = response.get_json()["content"][0]["attachment"]["url"]
    assert world.get(f"/fhir/{url}", LA).data == content
    too_big = pdf_bytes(10 * 1024 * 1024 + 1)
    assert (
        world.post(
            "/fhir/DocumentReference", PROVIDER, document_json(child, task["id"], data=too_big)
        ).status_code
        == 413
    )


# --- Medium: document search decided row by row over every document -------------------


def test_an_unrelated_search_costs_the_same_whether_or_not_the_child_exists(
    world: Scenario, db: Database
) -> None:
    child = world.child()
    world.consent(child)
    task = world.request(child)
    for _ in range(5):
        world.upload(child, task)
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    world.auth(OTHER_LA)
    event.listen(db.engine, "before_cursor_execute", count)
    try:
        known = world.get(
            f"/fhir/DocumentReference?patient.identifier={NHS_SYSTEM}|{child.number}", OTHER_LA
        )
        known_count = len(statements)
        statements.clear()
        unknown = world.get(
            f"/fhir/DocumentReference?patient.identifier={NHS_SYSTEM}|{nhs_number(81_004)}",
            OTHER_LA,
        )
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert known.get_json()["total"] == unknown.get_json()["total"] == 0
    assert known_count == len(statements)


# --- Low ------------------------------------------------------------------------------------


def test_an_unrelated_binary_read_does_not_name_its_document(world: Scenario) -> None:
    child = world.child()
    world.consent(child)
    document = world.upload(child, world.request(child))
    binary_id = document["content"][0]["attachment"]["url"].removeprefix("Binary/")
    response = world.get(f"/fhir/Binary/{binary_id}", OTHER_LA)
    assert response.status_code == 404
    assert response.get_json()["issue"][0]["diagnostics"] == f"Binary/{binary_id} is not known"
    assert document["id"] not in response.get_data(as_text=True)


@pytest.mark.parametrize("task", ["own", "unknown"])
def test_a_document_for_a_patient_the_uploader_cannot_see_is_404(
    world: Scenario, task: str
) -> None:
    """A provider names, with its own Task or a Task that does not exist, a child it has no
    relationship with (another LA's, no request to it): 404 for the patient, so the
    answer does not tell it the child exists (a 422 "the Task is for another patient"
    would), and nothing is stored."""
    own_child = world.child()
    world.consent(own_child)
    own_task = world.request(own_child)
    stranger = world.child(who=OTHER_LA)
    task_id = own_task["id"] if task == "own" else "8f7d0c56-51a8-4f5e-9f7e-0d6b1a3c2e10"
    response = world.post(
        "/fhir/DocumentReference", PROVIDER, document_json(stranger, task_id, data=b"advice")
    )
    assert response.status_code == 404, response.get_json()
    assert response.get_json()["issue"][0]["diagnostics"] == f"Patient/{stranger.id} is not known"
    found = world.get(f"/fhir/DocumentReference?related=Task/{own_task['id']}", PROVIDER)
    assert found.get_json()["total"] == 0


@pytest.mark.parametrize(
    "path",
    [
        "/fhir/Consent?date=9999-12-31",
        "/fhir/Task?authored-on=9999-12-31",
        "/fhir/Task?due=9999-12-31",
        "/fhir/Task?_lastUpdated=le9999-12-31",
        "/fhir/DocumentReference?date=9999-12-31",
        "/fhir/AuditEvent?date=9999-12-31",
        "/fhir/Consent?date=0000-01-01",
        f"/fhir/Consent/$evaluate?patient.identifier={NHS_SYSTEM}|9000000009&recipient=PRV01&purpose=ehcna-advice"
        "&at=9999-12-31",
    ],
)
def test_dates_at_the_ends_of_the_calendar_are_400(world: Scenario, path: str) -> None:
    world.child(number="9000000009")
    response = world.get(path, "la01-everything")
    assert response.status_code == 400, response.get_json()


@pytest.mark.parametrize("resource_type", ["Patient", "Consent", "Task", "DocumentReference"])
def test_a_version_number_beyond_any_stored_is_404(world: Scenario, resource_type: str) -> None:
    child = world.child()
    consent = world.consent(child)
    task = world.request(child)
    ids = {
        "Patient": child.id,
        "Consent": consent["id"],
        "Task": task["id"],
        "DocumentReference": "x",
    }
    if resource_type == "DocumentReference":
        ids["DocumentReference"] = world.upload(child, task)["id"]
    response = world.get(
        f"/fhir/{resource_type}/{ids[resource_type]}/_history/99999999999999999999",
        "la01-everything",
    )
    assert response.status_code == 404


def test_a_number_with_900k_digits_is_400(world: Scenario) -> None:
    body = (
        b'{"resourceType": "Patient", "birthDate": "2015-03-02", "multipleBirthInteger": '
        + b"9" * 900_000
        + b"}"
    )
    response = world.client.post(
        "/fhir/Patient",
        data=body,
        headers={**world.auth(LA), "Content-Type": "application/fhir+json"},
    )
    assert response.status_code == 400


@pytest.mark.parametrize("count", ["9" * 5000, "101", "-1", "\uff12"])
def test_a_count_beyond_100_is_refused_not_converted(world: Scenario, count: str) -> None:
    response = world.get(f"/fhir/Consent?_count={quote(count)}", LA)
    assert response.status_code == 400
    assert world.get("/fhir/Consent?_count=100", LA).status_code == 200


def test_links_come_from_the_public_base_url_not_the_host_header(world: Scenario) -> None:
    number = nhs_number(81_005)
    created = world.post(
        "/fhir/Patient", LA, patient_json(number, "2015-03-02"), Host="evil.example:666"
    )
    assert created.status_code == 201
    assert created.headers["Location"].startswith(f"{PUBLIC_BASE}/fhir/Patient/")
    search = world.get(
        f"/fhir/Patient?identifier={NHS_SYSTEM}|{number}", LA, Host="evil.example:666"
    ).get_json()
    urls = [link["url"] for link in search["link"]] + [
        entry["fullUrl"] for entry in search["entry"]
    ]
    assert urls and all(url.startswith(PUBLIC_BASE) for url in urls)
    assert "evil.example" not in json.dumps(search)


def _script_narrative() -> dict[str, str]:
    return {
        "status": "generated",
        "div": f'<div xmlns="{XHTML}"><script>alert(1)</script>advice</div>',
    }


@pytest.mark.parametrize(
    "div",
    [
        '<div xmlns="http://www.w3.org/1999/xhtml"><script>alert(1)</script>x</div>',
        '<div xmlns="http://www.w3.org/1999/xhtml"><img src="#x" onerror="alert(1)"/></div>',
        '<div xmlns="http://www.w3.org/1999/xhtml"><a href="javascript:alert(1)">x</a></div>',
        '<div xmlns="http://www.w3.org/1999/xhtml"><iframe src="https://evil.example"></iframe>x</div>',
        '<div xmlns="http://www.w3.org/1999/xhtml">   </div>',
        "<p>no xhtml div</p>",
    ],
    ids=["script", "event-attribute", "javascript-link", "iframe", "empty", "not-a-div"],
)
def test_narratives_follow_fhirs_rules(world: Scenario, div: str) -> None:
    child = world.child()
    task = task_json(child.id, text={"status": "generated", "div": div})
    response = world.post("/fhir/Task", LA, task)
    assert response.status_code == 422
    assert "Task.text.div" in _expressions(response)


def test_a_plain_narrative_is_accepted(world: Scenario) -> None:
    child = world.child()
    div = f'<div xmlns="{XHTML}"><p>Request for <b>health advice</b></p></div>'
    assert (
        world.post(
            "/fhir/Task", LA, task_json(child.id, text={"status": "generated", "div": div})
        ).status_code
        == 201
    )


def test_a_consent_update_cannot_change_its_narrative(world: Scenario) -> None:
    child = world.child()
    consent = world.consent(child)
    narrated = {
        **consent,
        "status": "inactive",
        "text": {
            "status": "generated",
            "div": f'<div xmlns="{XHTML}">Mother withdrew nothing</div>',
        },
    }
    response = world.put(f"/fhir/Consent/{consent['id']}", LA, narrated)
    assert response.status_code == 422
    assert "Consent.text" in _expressions(response)


def test_a_task_patch_cannot_store_script(world: Scenario) -> None:
    child = world.child()
    task = world.request(child)
    response = world.patch(
        f"/fhir/Task/{task['id']}",
        PROVIDER,
        [{"op": "add", "path": "/text", "value": _script_narrative()}],
    )
    assert response.status_code == 422
    stored = world.get(f"/fhir/Task/{task['id']}", PROVIDER).get_json()
    assert "script" not in json.dumps(stored)


def test_a_download_is_named_after_the_documents_title(world: Scenario) -> None:
    child = world.child()
    world.consent(child)
    document = world.upload(child, world.request(child), title='Paediatric advice "final"/v2')
    response = world.get(f"/fhir/{document['content'][0]['attachment']['url']}", LA)
    assert (
        response.headers["Content-Disposition"]
        == 'attachment; filename="Paediatric advice _final__v2.pdf"'
    )


def test_inline_data_round_trips_through_base64(world: Scenario) -> None:
    child = world.child()
    world.consent(child)
    task = world.request(child)
    content = pdf_bytes(1000)
    body = document_json(child, task["id"], data=content)
    assert base64.b64decode(body["content"][0]["attachment"]["data"]) == content
    created = world.post("/fhir/DocumentReference", PROVIDER, body)
    assert "data" not in created.get_json()["content"][0]["attachment"]
