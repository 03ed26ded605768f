"""Consent over HTTP: recording, validation, withdrawal, search, and `$evaluate` on every
worked case of `consent.md`."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from exchange.audit.models import AuditRecord
from exchange.db import Database
from tests.conftest import Tokens
from tests.factories import (
    CB,
    NHS_SYSTEM,
    FrozenClock,
    consent_json,
    patient_json,
    task_json,
    young_person_json,
)
from tests.scenario import LA, OTHER_LA, Child, Scenario


@pytest.fixture
def world(client: FlaskClient, tokens: Tokens) -> Scenario:
    return Scenario(client, tokens)


def young_person(world: Scenario, child: Child, date_time: str, **kwargs: Any) -> dict[str, Any]:
    """Record a Consent made by the young person themself."""
    response = world.post("/fhir/Consent", LA, young_person_json(child.id, date_time, **kwargs))
    assert response.status_code == 201, response.get_json()
    return dict(response.get_json())


def evaluate(
    world: Scenario,
    child: Child,
    at: str,
    recipient: str = "PRV01",
    purpose: str = "ehcna-advice",
    who: str = LA,
) -> Any:
    """`$evaluate` for the child, as `who`."""
    query = urlencode(
        {
            "patient.identifier": f"{NHS_SYSTEM}|{child.number}",
            "recipient": recipient,
            "purpose": purpose,
            "at": at,
        }
    )
    return world.get(f"/fhir/Consent/$evaluate?{query}", who)


def decision(world: Scenario, child: Child, at: str, **kwargs: Any) -> tuple[str, str | None]:
    """The decision and its reason, from a successful `$evaluate`."""
    response = evaluate(world, child, at, **kwargs)
    assert response.status_code == 200, response.get_json()
    parameters = {p["name"]: p for p in response.get_json()["parameter"]}
    return parameters["decision"]["valueCode"], parameters.get("reason", {}).get("valueCode")


# --- the worked cases of consent.md -------------------------------------------------------


def test_case_mother_permits(world: Scenario) -> None:
    c = world.child("2015-03-02")
    world.consent(c, "2026-10-01T10:00:00+01:00", maker="parent-with-pr")
    assert decision(world, c, "2026-11-20") == ("permit", None)


def _on(world: Scenario, clock: FrozenClock, moment: str) -> None:
    """Move the clock (and get fresh tokens: the cached ones are from another time)."""
    clock.current = datetime.fromisoformat(moment).astimezone(UTC)
    world.forget_tokens()


def test_case_withdrawn_by_the_recording_la(world: Scenario, clock: FrozenClock) -> None:
    _on(world, clock, "2026-10-01T12:00:00+01:00")
    c = world.child("2015-03-02")
    consent = world.consent(c, "2026-10-01T10:00:00+01:00", maker="parent-with-pr")
    _on(world, clock, "2026-11-01T12:00:00+00:00")
    withdrawn = world.put(
        f"/fhir/Consent/{consent['id']}",
        LA,
        {**consent, "status": "inactive"},
        **{"If-Match": 'W/"1"'},
    )
    assert withdrawn.status_code == 200, withdrawn.get_json()
    assert decision(world, c, "2026-11-20") == ("deny", "consent-withdrawn")


def test_case_a_past_question_is_answered_as_it_stood_then(
    world: Scenario, clock: FrozenClock
) -> None:
    c = world.child("2015-03-02")
    consent = world.consent(c, "2026-10-01T10:00:00+01:00", maker="parent-with-pr")
    _on(world, clock, "2026-11-30T12:00:00+00:00")
    world.put(f"/fhir/Consent/{consent['id']}", LA, {**consent, "status": "inactive"})
    _on(world, clock, "2026-12-01T12:00:00+00:00")
    assert decision(world, c, "2026-10-15") == ("permit", None)  # active at t
    assert decision(world, c, "2026-12-01") == ("deny", "consent-withdrawn")


def test_case_a_sixteen_year_olds_own_permit_carries_over(world: Scenario) -> None:
    c = world.child("2010-03-15")
    world.consent(c, "2026-04-01T10:00:00+01:00", maker="self")
    assert decision(world, c, "2026-07-01") == ("permit", None)


def test_case_an_attorney_refuses_after_the_young_person_loses_capacity(world: Scenario) -> None:
    c = world.child("2005-02-01")
    young_person(world, c, "2026-03-01T10:00:00+00:00")
    world.consent(
        c,
        "2026-10-01T10:00:00+01:00",
        maker="health-welfare-attorney",
        provision="deny",
        mca=("lacks-capacity", "2026-09-01"),
    )
    assert decision(world, c, "2026-11-20") == ("deny", "consent-refused")


def test_case_a_deputy_outranks_a_parent_acting_for_the_young_person(world: Scenario) -> None:
    c = world.child("2005-02-01")
    world.consent(
        c,
        "2026-09-10T10:00:00+01:00",
        maker="personal-welfare-deputy",
        provision="deny",
        mca=("lacks-capacity", "2026-09-01"),
    )
    world.consent(
        c,
        "2026-10-01T10:00:00+01:00",
        maker="parent-acting-for-young-person",
        mca=("lacks-capacity", "2026-09-01"),
    )
    assert decision(world, c, "2026-11-20") == ("deny", "consent-refused")


def test_only_the_la_itself_records_its_care_order_decision(world: Scenario) -> None:
    c = world.child("2015-03-02")
    world.child("2015-03-02", who="icb01-dco", number=c.number)  # the ICB registers the child too
    for who, ods in (("icb01-dco", "ICB01"), ("icb01-dco", "LA01"), (LA, "PRV01"), (LA, "ZZ99")):
        body = care_order_json(c.id, ods)
        response = world.post("/fhir/Consent", who, body)
        assert response.status_code == 422, (who, ods, response.get_json())
        assert "Consent.performer[0]" in [
            e for i in response.get_json()["issue"] for e in i.get("expression", [])
        ]
    assert world.post("/fhir/Consent", LA, care_order_json(c.id, "LA01")).status_code == 201


def care_order_json(patient_id: str, ods: str) -> dict[str, Any]:
    """A refusal by a local authority under a care order (an Organization performer)."""
    resource = consent_json(patient_id, "2026-10-01T10:00:00+01:00", provision="deny")
    resource.pop("contained")
    resource["performer"] = [
        {
            "type": "Organization",
            "identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": ods},
        }
    ]
    resource["extension"][0]["extension"].append(
        {
            "url": "relationship",
            "valueCoding": {
                "system": f"{CB}/CodeSystem/parental-responsibility",
                "code": "local-authority-care-order",
            },
        }
    )
    return resource


def test_case_gillick_competent_child_refuses(world: Scenario) -> None:
    c = world.child("2012-05-10")
    world.consent(c, "2026-09-01T10:00:00+01:00", maker="parent-with-pr")
    world.consent(
        c,
        "2026-10-01T10:00:00+01:00",
        maker="self",
        provision="deny",
        gillick=("competent", "2026-09-20"),
    )
    assert decision(world, c, "2026-11-20") == ("deny", "consent-refused-by-competent-child")


def test_case_child_refusal_without_gillick_is_not_decisive(world: Scenario) -> None:
    c = world.child("2012-05-10")
    world.consent(c, "2026-09-01T10:00:00+01:00", maker="parent-with-pr")
    world.consent(c, "2026-10-01T10:00:00+01:00", maker="self", provision="deny")
    assert decision(world, c, "2026-11-20") == ("permit", None)


def test_case_school_leaving_date_and_lapse(world: Scenario) -> None:
    c = world.child("2010-08-31")
    world.consent(c, "2026-05-01T10:00:00+01:00", maker="parent-with-pr")
    assert decision(world, c, "2026-06-26") == ("permit", None)
    assert decision(world, c, "2026-06-27") == ("deny", "consent-lapsed-young-person")


def test_case_sixteen_year_old_refuses_over_earlier_parent_permit(world: Scenario) -> None:
    c = world.child("2010-03-15")
    world.consent(c, "2026-04-01T10:00:00+01:00", maker="self", provision="deny")
    world.consent(c, "2026-03-01T10:00:00+00:00", maker="parent-with-pr")
    assert decision(world, c, "2026-05-01") == ("deny", "consent-refused-by-competent-child")


def test_case_young_person_permits(world: Scenario) -> None:
    c = world.child("2009-01-15")
    young_person(world, c, "2026-10-01T10:00:00+01:00")
    assert decision(world, c, "2026-11-20") == ("permit", None)


def test_case_parent_acting_for_young_person_without_mca(world: Scenario) -> None:
    c = world.child("2009-01-15")
    world.consent(c, "2026-10-01T10:00:00+01:00", maker="parent-acting-for-young-person")
    assert decision(world, c, "2026-11-20") == ("deny", "decision-maker-not-valid")


def test_case_academic_year_of_the_25th_birthday(world: Scenario) -> None:
    c = world.child("2001-11-19")
    young_person(world, c, "2026-10-01T10:00:00+01:00")
    assert decision(world, c, "2027-07-31") == ("permit", None)
    assert decision(world, c, "2027-08-01") == ("deny", "out-of-scope-age")


# --- recording ---------------------------------------------------------------------------


def test_recorded_consent_gets_server_fields(world: Scenario) -> None:
    c = world.child("2015-03-02")
    response = world.post("/fhir/Consent", LA, consent_json(c.id, "2026-10-01T10:00:00+01:00"))
    assert response.status_code == 201
    stored = response.get_json()
    assert stored["organization"][0]["identifier"]["value"] == "LA01"
    assert stored["policy"] == [{"uri": f"{CB}/policy/send-information-sharing"}]
    assert response.headers["Location"].endswith(f"/fhir/Consent/{stored['id']}/_history/1")


def test_invalid_decision_maker_is_stored_tagged_with_a_warning(world: Scenario) -> None:
    c = world.child("2009-01-15")
    response = world.post(
        "/fhir/Consent",
        LA,
        consent_json(c.id, "2026-10-01T10:00:00+01:00", maker="parent-acting-for-young-person"),
        Prefer="return=OperationOutcome",
    )
    assert response.status_code == 201
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["severity"] == "warning"
    tagged = world.get(
        f"/fhir/Consent?_tag={CB}/CodeSystem/consent-validity|decision-maker-not-valid"
        f"&patient=Patient/{c.id}",
        LA,
    ).get_json()
    assert tagged["total"] == 1
    assert tagged["entry"][0]["resource"]["meta"]["tag"][0]["code"] == "decision-maker-not-valid"


@pytest.mark.parametrize(
    ("change", "expression"),
    [
        (lambda r: r.update(status="bogus"), "Consent.status"),
        (
            lambda r: r["provision"]["purpose"][0].update(code="marketing"),
            "Consent.provision.purpose[0]",
        ),
        (lambda r: r["provision"].pop("purpose"), "Consent.provision.purpose"),
        (lambda r: r.update(dateTime="2099-01-01T00:00:00Z"), "Consent.dateTime"),
        (lambda r: r.pop("extension"), "Consent.extension"),
    ],
)
def test_invalid_consents_are_422_with_expressions(
    world: Scenario, change: Any, expression: str
) -> None:
    c = world.child("2015-03-02")
    resource = consent_json(c.id, "2026-10-01T10:00:00+01:00")
    change(resource)
    response = world.post("/fhir/Consent", LA, resource)
    assert response.status_code == 422, response.get_json()
    expressions = [e for issue in response.get_json()["issue"] for e in issue.get("expression", [])]
    assert any(e.startswith(expression) for e in expressions), expressions


def test_consent_for_an_invisible_patient_is_404(world: Scenario) -> None:
    c = world.child("2015-03-02")
    assert (
        world.post(
            "/fhir/Consent", OTHER_LA, consent_json(c.id, "2026-10-01T10:00:00+01:00")
        ).status_code
        == 404
    )


def test_consent_without_an_agreement_is_403(
    world: Scenario, db: Database, clock: FrozenClock
) -> None:
    from exchange.audit.events import Actor
    from exchange.registry.service import set_agreement_status

    c = world.child("2015-03-02")
    with db.transaction() as session:
        set_agreement_status(session, "dsa-2026-01", "terminated", clock, Actor.operator())
    response = world.post("/fhir/Consent", LA, consent_json(c.id, "2026-10-01T10:00:00+01:00"))
    assert response.status_code == 403
    assert response.get_json()["issue"][0]["details"]["coding"][0]["code"] == "no-agreement"


def test_withdrawal_rules(world: Scenario) -> None:
    c = world.child("2015-03-02")
    consent = world.consent(c, "2026-10-01T10:00:00+01:00")
    url = f"/fhir/Consent/{consent['id']}"
    withdrawal = {**consent, "status": "inactive"}
    assert world.put(url, LA, withdrawal, **{"If-Match": 'W/"9"'}).status_code == 412
    other = world.put(url, OTHER_LA, withdrawal)
    assert other.status_code == 404  # LA02 cannot see this child
    world.post("/fhir/Patient", OTHER_LA, patient_json(c.number, "2015-03-02"))
    registrant = world.put(url, OTHER_LA, withdrawal)
    assert (
        registrant.status_code == 404
    )  # registering the child is no care relationship (access.md)
    assert world.post("/fhir/Task", OTHER_LA, task_json(c.id)).status_code == 201
    seeing = world.put(url, OTHER_LA, withdrawal)
    assert (
        seeing.status_code == 403
    )  # LA02 now reads the child's Consents but did not record this one
    reworded = {**consent, "provision": {**consent["provision"], "type": "deny"}}
    assert world.put(url, LA, reworded).status_code == 422
    assert world.put(url, LA, withdrawal).status_code == 200
    assert world.put(url, LA, {**consent, "status": "active"}).status_code == 422
    history = world.get(f"{url}/_history", LA).get_json()
    assert [e["resource"]["status"] for e in history["entry"]] == ["inactive", "active"]
    assert world.get(f"{url}/_history/1", LA).get_json()["status"] == "active"


def test_search(world: Scenario) -> None:
    c = world.child("2015-03-02")
    world.consent(c, "2026-09-01T10:00:00+01:00")
    world.consent(c, "2026-10-01T10:00:00+01:00", provision="deny")
    by_number = world.get(
        f"/fhir/Consent?patient.identifier={NHS_SYSTEM}|{c.number}", LA
    ).get_json()
    assert by_number["total"] == 2
    assert [e["resource"]["provision"]["type"] for e in by_number["entry"]] == ["deny", "permit"]
    assert (
        world.get(f"/fhir/Consent?patient=Patient/{c.id}&date=lt2026-09-15", LA).get_json()["total"]
        == 1
    )
    assert (
        world.get(f"/fhir/Consent?patient=Patient/{c.id}&status=inactive", LA).get_json()["total"]
        == 0
    )
    assert (
        world.get(
            f"/fhir/Consent?patient=Patient/{c.id}&category=http://loinc.org|59284-0", LA
        ).get_json()["total"]
        == 2
    )
    assert (
        world.get(f"/fhir/Consent?patient.identifier={NHS_SYSTEM}|{c.number}", OTHER_LA).get_json()[
            "total"
        ]
        == 0
    )
    first = world.get(f"/fhir/Consent?patient=Patient/{c.id}&_count=1&_sort=date", LA).get_json()
    following = next(link["url"] for link in first["link"] if link["relation"] == "next")
    second = world.get(following.replace("http://localhost", ""), LA).get_json()
    assert [p["entry"][0]["resource"]["provision"]["type"] for p in (first, second)] == [
        "permit",
        "deny",
    ]
    assert not [link for link in second["link"] if link["relation"] == "next"]


# --- $evaluate -------------------------------------------------------------------------


def test_evaluate_for_an_invisible_patient_is_404(world: Scenario) -> None:
    c = world.child("2015-03-02")
    assert evaluate(world, c, "2026-11-20", who=OTHER_LA).status_code == 404


def test_evaluate_names_the_deciding_consent_and_is_audited(world: Scenario, db: Database) -> None:
    c = world.child("2015-03-02")
    consent = world.consent(c, "2026-10-01T10:00:00+01:00")
    response = evaluate(world, c, "2026-11-20")
    parameters = {p["name"]: p for p in response.get_json()["parameter"]}
    assert parameters["consent"]["valueReference"]["reference"] == f"Consent/{consent['id']}"
    decision(world, c, "2026-11-20", purpose="tribunal")
    with db.transaction() as session:
        rows = session.scalars(
            select(AuditRecord).where(AuditRecord.kind == "rest:operation").order_by(AuditRecord.id)
        ).all()
    outcomes = [json.loads(r.payload).get("outcomeDesc") for r in rows]
    assert outcomes[-2:] == ["permit", "deny: no-consent"]
    assert str(rows[-2].patient_id) == c.id


def test_ig_lead_finds_a_childs_audit_trail_by_nhs_number(world: Scenario) -> None:
    c = world.child("2015-03-02")
    world.consent(c, "2026-10-01T10:00:00+01:00")
    decision(world, c, "2026-11-20")
    trail = world.get(
        f"/fhir/AuditEvent?patient.identifier={NHS_SYSTEM}|{c.number}&_count=100", "la01-ig"
    ).get_json()
    subtypes = sorted(e["resource"]["subtype"][0]["code"] for e in trail["entry"])
    assert subtypes == [
        "create",
        "create",
        "operation",
    ]  # the registration, the Consent, the $evaluate
    assert all(
        any(
            x.get("what", {}).get("reference") == f"Patient/{c.id}" for x in e["resource"]["entity"]
        )
        for e in trail["entry"]
    )


@pytest.mark.parametrize(
    "query",
    [
        "recipient=PRV01&purpose=ehcna-advice",
        "patient.identifier=x&purpose=ehcna-advice",
        "patient.identifier=x&recipient=PRV01&purpose=marketing",
    ],
)
def test_evaluate_needs_its_parameters(world: Scenario, query: str) -> None:
    assert world.get(f"/fhir/Consent/$evaluate?{query}", LA).status_code == 400


def test_not_a_recipient(world: Scenario) -> None:
    c = world.child("2015-03-02")
    world.consent(c, "2026-10-01T10:00:00+01:00", actors=("PRV02",))
    assert decision(world, c, "2026-11-20", recipient="PRV02") == ("permit", None)
    assert decision(world, c, "2026-11-20", recipient="PRV01") == ("deny", "not-a-recipient")
