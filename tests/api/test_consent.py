"""Consent over HTTP: recording, validation, withdrawal, search, and `$evaluate` on every
worked case of `consent.md`."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from exchange.audit.models import AuditRecord
from exchange.db import Database
from tests.conftest import Tokens
from tests.factories import (
    NHS_SYSTEM,
    FrozenClock,
    consent_json,
    nhs_number,
    patient_json,
    task_json,
    young_person_json,
)

LA = "la01-case-system"
CB = "https://fhir.send-exchange.example"


class Child:
    """A registered patient and helpers to record consents and ask for decisions."""

    _seed = 100

    def __init__(self, client: FlaskClient, tokens: Tokens, born: str) -> None:
        Child._seed += 1
        self.client, self.tokens = client, tokens
        self.number = nhs_number(Child._seed)
        created = client.post("/fhir/Patient", json=patient_json(self.number, born), headers=tokens.headers(LA))
        assert created.status_code == 201, created.get_json()
        self.id = created.get_json()["id"]

    def record(self, resource: dict[str, Any], who: str = LA, **headers: str) -> Any:
        return self.client.post("/fhir/Consent", json=resource, headers={**self.tokens.headers(who), **headers})

    def consent(self, date_time: str, **kwargs: Any) -> dict[str, Any]:
        response = self.record(consent_json(self.id, date_time, **kwargs))
        assert response.status_code == 201, response.get_json()
        return dict(response.get_json())

    def young_person(self, date_time: str, **kwargs: Any) -> dict[str, Any]:
        response = self.record(young_person_json(self.id, date_time, **kwargs))
        assert response.status_code == 201, response.get_json()
        return dict(response.get_json())

    def evaluate(self, at: str, recipient: str = "PRV01", purpose: str = "ehcna-advice", who: str = LA) -> Any:
        return self.client.get(
            "/fhir/Consent/$evaluate",
            query_string={"patient.identifier": f"{NHS_SYSTEM}|{self.number}", "recipient": recipient,
                          "purpose": purpose, "at": at},
            headers=self.tokens.headers(who),
        )

    def decision(self, at: str, **kwargs: Any) -> tuple[str, str | None]:
        response = self.evaluate(at, **kwargs)
        assert response.status_code == 200, response.get_json()
        parameters = {p["name"]: p for p in response.get_json()["parameter"]}
        return parameters["decision"]["valueCode"], parameters.get("reason", {}).get("valueCode")


@pytest.fixture
def child(client: FlaskClient, tokens: Tokens) -> Any:
    return lambda born: Child(client, tokens, born)


# --- the worked cases of consent.md -------------------------------------------------------

def test_case_mother_permits(child: Any) -> None:
    c = child("2015-03-02")
    c.consent("2026-10-01T10:00:00+01:00", maker="parent-with-pr")
    assert c.decision("2026-11-20") == ("permit", None)


def test_case_withdrawn_by_the_recording_la(child: Any, client: FlaskClient, tokens: Tokens) -> None:
    c = child("2015-03-02")
    consent = c.consent("2026-10-01T10:00:00+01:00", maker="parent-with-pr")
    withdrawn = client.put(f"/fhir/Consent/{consent['id']}", json={**consent, "status": "inactive"},
                           headers={**tokens.headers(LA), "If-Match": 'W/"1"'})
    assert withdrawn.status_code == 200, withdrawn.get_json()
    assert c.decision("2026-11-20") == ("deny", "consent-withdrawn")


def test_case_gillick_competent_child_refuses(child: Any) -> None:
    c = child("2012-05-10")
    c.consent("2026-09-01T10:00:00+01:00", maker="parent-with-pr")
    c.consent("2026-10-01T10:00:00+01:00", maker="self", provision="deny", gillick=("competent", "2026-09-20"))
    assert c.decision("2026-11-20") == ("deny", "consent-refused-by-competent-child")


def test_case_child_refusal_without_gillick_is_not_decisive(child: Any) -> None:
    c = child("2012-05-10")
    c.consent("2026-09-01T10:00:00+01:00", maker="parent-with-pr")
    c.consent("2026-10-01T10:00:00+01:00", maker="self", provision="deny")
    assert c.decision("2026-11-20") == ("permit", None)


def test_case_school_leaving_date_and_lapse(child: Any) -> None:
    c = child("2010-08-31")
    c.consent("2026-05-01T10:00:00+01:00", maker="parent-with-pr")
    assert c.decision("2026-06-26") == ("permit", None)
    assert c.decision("2026-06-27") == ("deny", "consent-lapsed-young-person")


def test_case_sixteen_year_old_refuses_over_earlier_parent_permit(child: Any) -> None:
    c = child("2010-03-15")
    c.consent("2026-04-01T10:00:00+01:00", maker="self", provision="deny")
    c.consent("2026-03-01T10:00:00+00:00", maker="parent-with-pr")
    assert c.decision("2026-05-01") == ("deny", "consent-refused-by-competent-child")


def test_case_young_person_permits(child: Any) -> None:
    c = child("2009-01-15")
    c.young_person("2026-10-01T10:00:00+01:00")
    assert c.decision("2026-11-20") == ("permit", None)


def test_case_parent_acting_for_young_person_without_mca(child: Any) -> None:
    c = child("2009-01-15")
    c.consent("2026-10-01T10:00:00+01:00", maker="parent-acting-for-young-person")
    assert c.decision("2026-11-20") == ("deny", "decision-maker-not-valid")


def test_case_academic_year_of_the_25th_birthday(child: Any) -> None:
    c = child("2001-11-19")
    c.young_person("2026-10-01T10:00:00+01:00")
    assert c.decision("2027-07-31") == ("permit", None)
    assert c.decision("2027-08-01") == ("deny", "out-of-scope-age")


# --- recording ---------------------------------------------------------------------------

def test_recorded_consent_gets_server_fields(child: Any) -> None:
    c = child("2015-03-02")
    resource = consent_json(c.id, "2026-10-01T10:00:00+01:00")
    response = c.record(resource)
    assert response.status_code == 201
    stored = response.get_json()
    assert stored["organization"][0]["identifier"]["value"] == "LA01"
    assert stored["policy"] == [{"uri": f"{CB}/policy/send-information-sharing"}]
    assert response.headers["Location"].endswith(f"/fhir/Consent/{stored['id']}/_history/1")


def test_invalid_decision_maker_is_stored_tagged_with_a_warning(child: Any, client: FlaskClient, tokens: Tokens) -> None:
    c = child("2009-01-15")
    response = c.record(consent_json(c.id, "2026-10-01T10:00:00+01:00", maker="parent-acting-for-young-person"),
                        Prefer="return=OperationOutcome")
    assert response.status_code == 201
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["severity"] == "warning"
    tagged = client.get(f"/fhir/Consent?_tag={CB}/CodeSystem/consent-validity|decision-maker-not-valid&patient=Patient/{c.id}",
                        headers=tokens.headers(LA)).get_json()
    assert tagged["total"] == 1
    assert tagged["entry"][0]["resource"]["meta"]["tag"][0]["code"] == "decision-maker-not-valid"


@pytest.mark.parametrize(
    ("change", "expression"),
    [
        (lambda r: r.update(status="bogus"), "Consent.status"),
        (lambda r: r["provision"]["purpose"][0].update(code="marketing"), "Consent.provision.purpose[0]"),
        (lambda r: r["provision"].pop("purpose"), "Consent.provision.purpose"),
        (lambda r: r.update(dateTime="2099-01-01T00:00:00Z"), "Consent.dateTime"),
        (lambda r: r.pop("extension"), "Consent.extension"),
    ],
)
def test_invalid_consents_are_422_with_expressions(child: Any, change: Any, expression: str) -> None:
    c = child("2015-03-02")
    resource = consent_json(c.id, "2026-10-01T10:00:00+01:00")
    change(resource)
    response = c.record(resource)
    assert response.status_code == 422, response.get_json()
    expressions = [e for issue in response.get_json()["issue"] for e in issue.get("expression", [])]
    assert any(e.startswith(expression) for e in expressions), expressions


def test_consent_for_an_invisible_patient_is_404(child: Any) -> None:
    c = child("2015-03-02")
    assert c.record(consent_json(c.id, "2026-10-01T10:00:00+01:00"), who="la02-case-system").status_code == 404


def test_consent_without_an_agreement_is_403(child: Any, db: Database, clock: FrozenClock) -> None:
    from exchange.audit.events import Actor
    from exchange.registry.service import set_agreement_status

    c = child("2015-03-02")
    with db.transaction() as session:
        set_agreement_status(session, "dsa-2026-01", "terminated", clock, Actor.operator())
    response = c.record(consent_json(c.id, "2026-10-01T10:00:00+01:00"))
    assert response.status_code == 403
    assert response.get_json()["issue"][0]["details"]["coding"][0]["code"] == "no-agreement"


def test_withdrawal_rules(child: Any, client: FlaskClient, tokens: Tokens) -> None:
    c = child("2015-03-02")
    consent = c.consent("2026-10-01T10:00:00+01:00")
    url = f"/fhir/Consent/{consent['id']}"
    assert client.put(url, json={**consent, "status": "inactive"}, headers={**tokens.headers(LA), "If-Match": 'W/"9"'}).status_code == 412
    other = client.put(url, json={**consent, "status": "inactive"}, headers=tokens.headers("la02-case-system"))
    assert other.status_code == 404  # LA02 cannot see this child
    client.post("/fhir/Patient", json=patient_json(c.number, "2015-03-02"), headers=tokens.headers("la02-case-system"))
    registrant = client.put(url, json={**consent, "status": "inactive"}, headers=tokens.headers("la02-case-system"))
    assert registrant.status_code == 404  # registering the child is no care relationship (access.md)
    assert client.post("/fhir/Task", json=task_json(c.id), headers=tokens.headers("la02-case-system")).status_code == 201
    seeing = client.put(url, json={**consent, "status": "inactive"}, headers=tokens.headers("la02-case-system"))
    assert seeing.status_code == 403  # LA02 now reads the child's Consents but did not record this one
    reworded = {**consent, "provision": {**consent["provision"], "type": "deny"}}
    assert client.put(url, json=reworded, headers=tokens.headers(LA)).status_code == 422
    assert client.put(url, json={**consent, "status": "inactive"}, headers=tokens.headers(LA)).status_code == 200
    assert client.put(url, json={**consent, "status": "active"}, headers=tokens.headers(LA)).status_code == 422
    history = client.get(f"{url}/_history", headers=tokens.headers(LA)).get_json()
    assert [e["resource"]["status"] for e in history["entry"]] == ["inactive", "active"]
    assert client.get(f"{url}/_history/1", headers=tokens.headers(LA)).get_json()["status"] == "active"


def test_search(child: Any, client: FlaskClient, tokens: Tokens) -> None:
    c = child("2015-03-02")
    c.consent("2026-09-01T10:00:00+01:00")
    c.consent("2026-10-01T10:00:00+01:00", provision="deny")
    headers = tokens.headers(LA)
    by_number = client.get(f"/fhir/Consent?patient.identifier={NHS_SYSTEM}|{c.number}", headers=headers).get_json()
    assert by_number["total"] == 2
    assert [e["resource"]["provision"]["type"] for e in by_number["entry"]] == ["deny", "permit"]
    assert client.get(f"/fhir/Consent?patient=Patient/{c.id}&date=lt2026-09-15", headers=headers).get_json()["total"] == 1
    assert client.get(f"/fhir/Consent?patient=Patient/{c.id}&status=inactive", headers=headers).get_json()["total"] == 0
    assert client.get(f"/fhir/Consent?patient=Patient/{c.id}&category=http://loinc.org|59284-0", headers=headers).get_json()["total"] == 2
    assert client.get(f"/fhir/Consent?patient.identifier={NHS_SYSTEM}|{c.number}",
                      headers=tokens.headers("la02-case-system")).get_json()["total"] == 0
    first = client.get(f"/fhir/Consent?patient=Patient/{c.id}&_count=1&_sort=date", headers=headers).get_json()
    following = next(link["url"] for link in first["link"] if link["relation"] == "next")
    second = client.get(following.replace("http://localhost", ""), headers=headers).get_json()
    assert [p["entry"][0]["resource"]["provision"]["type"] for p in (first, second)] == ["permit", "deny"]
    assert not [link for link in second["link"] if link["relation"] == "next"]


# --- $evaluate -------------------------------------------------------------------------

def test_evaluate_for_an_invisible_patient_is_404(child: Any) -> None:
    c = child("2015-03-02")
    assert c.evaluate("2026-11-20", who="la02-case-system").status_code == 404


def test_evaluate_names_the_deciding_consent_and_is_audited(child: Any, db: Database) -> None:
    c = child("2015-03-02")
    consent = c.consent("2026-10-01T10:00:00+01:00")
    response = c.evaluate("2026-11-20")
    parameters = {p["name"]: p for p in response.get_json()["parameter"]}
    assert parameters["consent"]["valueReference"]["reference"] == f"Consent/{consent['id']}"
    c.decision("2026-11-20", purpose="tribunal")
    with db.transaction() as session:
        rows = session.scalars(select(AuditRecord).where(AuditRecord.kind == "rest:operation").order_by(AuditRecord.id)).all()
    outcomes = [json.loads(r.payload).get("outcomeDesc") for r in rows]
    assert outcomes[-2:] == ["permit", "deny: no-consent"]
    assert str(rows[-2].patient_id) == c.id


def test_ig_lead_finds_a_childs_audit_trail_by_nhs_number(child: Any, client: FlaskClient, tokens: Tokens) -> None:
    c = child("2015-03-02")
    c.consent("2026-10-01T10:00:00+01:00")
    c.decision("2026-11-20")
    trail = client.get(f"/fhir/AuditEvent?patient.identifier={NHS_SYSTEM}|{c.number}&_count=100",
                       headers=tokens.headers("la01-ig")).get_json()
    subtypes = sorted(e["resource"]["subtype"][0]["code"] for e in trail["entry"])
    assert subtypes == ["create", "create", "operation"]  # the registration, the Consent, the $evaluate
    assert all(any(x.get("what", {}).get("reference") == f"Patient/{c.id}" for x in e["resource"]["entity"])
               for e in trail["entry"])


@pytest.mark.parametrize("query", ["recipient=PRV01&purpose=ehcna-advice", "patient.identifier=x&purpose=ehcna-advice",
                                   "patient.identifier=x&recipient=PRV01&purpose=marketing"])
def test_evaluate_needs_its_parameters(client: FlaskClient, tokens: Tokens, query: str) -> None:
    assert client.get(f"/fhir/Consent/$evaluate?{query}", headers=tokens.headers(LA)).status_code == 400


def test_not_a_recipient(child: Any) -> None:
    c = child("2015-03-02")
    c.consent("2026-10-01T10:00:00+01:00", actors=("PRV02",))
    assert c.decision("2026-11-20", recipient="PRV02") == ("permit", None)
    assert c.decision("2026-11-20", recipient="PRV01") == ("deny", "not-a-recipient")


