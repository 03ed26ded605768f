"""What each request is for (advice-requests.md, issue 11): an annual review's purpose and
advice document, and the tribunal clock from the day the LA received the order."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from exchange.audit.events import Actor
from exchange.audit.models import AuditRecord
from exchange.db import Database
from exchange.registry.service import apply_bootstrap, known_roles
from exchange.registry.specs import parse_bootstrap
from tests.conftest import ALL_SCOPES, Tokens
from tests.factories import CB, FrozenClock, output, status_reason, task_json
from tests.oauth import public_jwks, signing_key
from tests.scenario import LA, PROVIDER, Scenario

ANNUAL = {"restriction": {"period": {"end": "2027-01-10"}}}


@pytest.fixture
def world(client: FlaskClient, tokens: Tokens) -> Scenario:
    return Scenario(client, tokens)


def _an_la_agreed_only_for_ehcna(db: Database, clock: FrozenClock) -> str:
    """LA04, with an agreement with PRV01 for EHC needs assessments only."""
    document = {
        "organisations": [{"ods": "LA04", "name": "Fourth Borough Council", "role": "la"}],
        "agreements": [
            {
                "id": "dsa-la04",
                "title": "EHCNA only",
                "parties": ["LA04", "PRV01"],
                "purposes": ["ehcna-advice"],
                "start": "2026-01-01",
                "end": "2028-12-31",
            }
        ],
        "clients": [
            {
                "client_id": "la04-case-system",
                "organisation": "LA04",
                "scopes": ALL_SCOPES,
                "jwks": public_jwks(signing_key("ES256", "la04-case-system")),
            }
        ],
    }
    with db.transaction() as session:
        apply_bootstrap(
            session, parse_bootstrap(document, known_roles(session)), clock, Actor.operator()
        )
    return "la04-case-system"


def test_an_annual_review_needs_an_agreement_for_annual_reviews(
    world: Scenario, db: Database, clock: FrozenClock
) -> None:
    la04 = _an_la_agreed_only_for_ehcna(db, clock)
    child = world.child(who=la04)
    refused = world.post("/fhir/Task", la04, task_json(child.id, reason="annual-review", **ANNUAL))
    assert refused.status_code == 403
    assert refused.get_json()["issue"][0]["details"]["coding"][0]["code"] == "no-agreement"
    assert world.post("/fhir/Task", la04, task_json(child.id)).status_code == 201


def _complete(world: Scenario, task: dict[str, Any], document: dict[str, Any]) -> Any:
    current = world.get(f"/fhir/Task/{task['id']}", PROVIDER).get_json()
    advice = output("advice", valueReference={"reference": f"DocumentReference/{document['id']}"})
    return world.put(
        f"/fhir/Task/{task['id']}",
        PROVIDER,
        {**current, "status": "completed", "output": [*current.get("output", []), advice]},
    )


def test_annual_review_advice_completes_an_annual_review_only(world: Scenario) -> None:
    child = world.child()
    world.consent(child, purposes=("ehcna-advice", "annual-review"))
    review = world.request(child, reason="annual-review", **ANNUAL)
    assessment = world.request(child)
    for_review = world.upload(child, review, doc_type="annual-review-advice")
    misplaced = world.upload(child, assessment, doc_type="annual-review-advice")
    assert _complete(world, review, for_review).status_code == 200
    assert _complete(world, assessment, misplaced).status_code == 422


def test_an_annual_reviews_documents_are_read_under_annual_review(
    world: Scenario, db: Database
) -> None:
    child = world.child()
    world.consent(child, purposes=("annual-review",))  # no consent for EHC needs assessment
    review = world.request(child, reason="annual-review", **ANNUAL)
    document = world.upload(child, review, doc_type="annual-review-advice")
    assert world.get(f"/fhir/DocumentReference/{document['id']}", LA).status_code == 200
    stated = world.get(
        f"/fhir/DocumentReference/{document['id']}", LA, **{"X-Purpose-Of-Use": "ehcna-advice"}
    )
    assert stated.status_code == 403  # the purpose the caller states is the one decided
    with db.transaction() as session:
        reads = [
            json.loads(p)
            for p in session.scalars(
                select(AuditRecord.payload).where(
                    AuditRecord.agent_org == "LA01",
                    AuditRecord.kind == "rest:read",
                    AuditRecord.outcome == "0",
                )
            )
        ]
    purposes = [
        c["code"]
        for e in reads
        for a in e["agent"]
        for p in a.get("purposeOfUse", [])
        for c in p["coding"]
    ]
    assert purposes == ["annual-review"]


@pytest.mark.parametrize("name", ["tribunal-order-received", "tribunal-decision-date"])
def test_a_tribunal_response_is_due_35_days_after_the_order_was_received(
    world: Scenario, name: str
) -> None:
    child = world.child()
    received = {
        "type": {"coding": [{"system": f"{CB}/CodeSystem/task-input-type", "code": name}]},
        "valueDate": "2026-11-02",
    }
    task = world.request(
        child, "ICB01", task_type="tribunal-health-response", reason=None, input=[received]
    )
    assert task["restriction"]["period"]["end"] == "2026-12-07"


def test_the_forward_helper_still_works_for_annual_reviews(world: Scenario) -> None:
    child = world.child()
    review = world.request(child, reason="annual-review", **ANNUAL)
    forwarded = world.forward(review, "PRV02")
    assert forwarded["statusReason"] == status_reason("forwarded")
