"""The read decision for documents (`access.md`), called below the API on real rows: the
world's organisations and agreement, a child, consent and request made by the world's
clients, then `documents.access.decide_document` and `decide_binary` asked directly."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from exchange.agreements.models import Agreement, Organisation
from exchange.audit.events import Actor
from exchange.caller import Caller
from exchange.codes import AccessDenialReason, Purpose
from exchange.db import Database
from exchange.documents.access import (
    DocumentDecision,
    decide_binary,
    decide_document,
    readable_document,
    readable_documents,
)
from exchange.documents.models import BinaryRow
from exchange.documents.queries import DocumentFilters, Token, related_documents, related_readable
from exchange.errors import Required
from tests.conftest import Tokens
from tests.factories import FrozenClock, pdf_bytes
from tests.scenario import LA, OTHER_PROVIDER, PROVIDER, Child, Scenario

JUSTIFICATION = "Section 47 enquiry opened today; urgent health information needed."


@pytest.fixture
def world(client: FlaskClient, tokens: Tokens) -> Scenario:
    return Scenario(client, tokens)


def _caller(
    session: Any,
    ods: str,
    purpose: str = Purpose.EHCNA_ADVICE.value,
    justification: str | None = None,
) -> Caller:
    """The organisation `ods` as it is registered, reading for `purpose`."""
    organisation = session.scalars(select(Organisation).where(Organisation.ods == ods)).one()
    return Caller(
        organisation.id,
        organisation.ods,
        organisation.role,
        organisation.break_glass,
        Actor(client_id=f"{ods.lower()}-test", organisation=ods),
        purpose=purpose,
        justification=justification,
    )


def _decide(
    db: Database, clock: FrozenClock, document: dict[str, Any], ods: str, **reading: Any
) -> DocumentDecision:
    with db.transaction() as session:
        caller = _caller(session, ods, **reading)
        found = readable_document(session, uuid.UUID(document["id"]), caller, clock.now())
        assert found is not None
        return decide_document(session, found, caller, clock.now())


def _advice(world: Scenario) -> tuple[Child, dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A child, the mother's consent to ehcna-advice, the LA's request to PRV01, and
    PRV01's advice."""
    child = world.child()
    consent = world.consent(child)
    task = world.request(child)
    return child, consent, task, world.upload(child, task, content=pdf_bytes(2000))


def _allowed(decision: DocumentDecision) -> bool:
    return decision.visible and decision.allowed and decision.reason is None


def test_the_custodian_reads_its_own_without_agreement_or_consent(
    world: Scenario, db: Database, clock: FrozenClock
) -> None:
    _, consent, _, document = _advice(world)
    assert (
        world.put(
            f"/fhir/Consent/{consent['id']}", LA, {**consent, "status": "inactive"}
        ).status_code
        == 200
    )
    decision = _decide(db, clock, document, "PRV01")
    assert _allowed(decision)
    assert (decision.agreement, decision.consent_ids, decision.break_glass) == (None, (), False)


def test_the_other_party_reads_under_the_agreement_and_the_consent(
    world: Scenario, db: Database, clock: FrozenClock
) -> None:
    _, consent, _, document = _advice(world)
    decision = _decide(db, clock, document, "LA01")
    assert _allowed(decision)
    assert decision.agreement is not None
    assert decision.consent_ids == (consent["id"],)


def test_a_withdrawal_after_the_reads_time_does_not_reach_back(
    world: Scenario, db: Database, clock: FrozenClock
) -> None:
    """The document's query brings the Consents' current versions (`Prefetched`); a read
    whose time is before the newest of them decides on the versions as they stood then,
    even with the newer version's record already in the per-process cache."""
    _, consent, _, document = _advice(world)
    read_at = clock.now()
    clock.advance(minutes=1)
    withdrawn = {**consent, "status": "inactive"}
    assert world.put(f"/fhir/Consent/{consent['id']}", LA, withdrawn).status_code == 200
    later = _decide(db, clock, document, "LA01")  # keeps version 2's record
    assert later.reason == AccessDenialReason.CONSENT_WITHDRAWN
    clock.current = read_at
    assert _allowed(_decide(db, clock, document, "LA01"))


def test_an_unrelated_organisation_does_not_see_it(
    world: Scenario, db: Database, clock: FrozenClock
) -> None:
    _, _, _, document = _advice(world)
    assert _decide(db, clock, document, "LA02") == DocumentDecision(visible=False, allowed=False)


def test_the_previous_owner_does_not_see_it(
    world: Scenario, db: Database, clock: FrozenClock
) -> None:
    child = world.child()
    world.consent(child)
    task = world.request(child)
    world.forward(task, "PRV02")
    document = world.upload(child, task, who=OTHER_PROVIDER)
    assert not _decide(db, clock, document, "PRV01").visible
    assert _allowed(_decide(db, clock, document, "LA01"))


def test_break_glass_without_permission_is_refused(
    world: Scenario, db: Database, clock: FrozenClock
) -> None:
    _, _, _, document = _advice(world)
    decision = _decide(
        db, clock, document, "LA01", purpose=Purpose.SAFEGUARDING.value, justification=JUSTIFICATION
    )
    assert (decision.visible, decision.allowed) == (True, False)
    assert decision.reason is AccessDenialReason.BREAK_GLASS_NOT_PERMITTED


@pytest.mark.parametrize("justification", [None, "", " " * 30, "x" * 19, "x" * 1001])
def test_break_glass_without_a_justification_is_required(
    world: Scenario, db: Database, clock: FrozenClock, justification: str | None
) -> None:
    child, _, _, document = _advice(world)
    world.request(child, "ICB01", task_type="dco-quality-assurance", reason=None)
    # Before anything else is decided: for the custodian, for the permitted ICB, for anyone.
    for purpose in (Purpose.SAFEGUARDING.value, Purpose.COURT_ORDER.value):
        for ods in ("PRV01", "ICB01", "LA01", "LA02"):
            with pytest.raises(Required):
                _decide(db, clock, document, ods, purpose=purpose, justification=justification)


def test_break_glass_with_permission_and_justification_skips_consent(
    world: Scenario, db: Database, clock: FrozenClock
) -> None:
    child, consent, _, document = _advice(world)
    world.request(child, "ICB01", task_type="dco-quality-assurance", reason=None)
    assert (
        world.put(
            f"/fhir/Consent/{consent['id']}", LA, {**consent, "status": "inactive"}
        ).status_code
        == 200
    )
    assert _decide(db, clock, document, "ICB01").reason is AccessDenialReason.CONSENT_WITHDRAWN
    decision = _decide(
        db,
        clock,
        document,
        "ICB01",
        purpose=Purpose.SAFEGUARDING.value,
        justification=" " + "x" * 20 + " ",
    )
    assert _allowed(decision) and decision.break_glass
    assert decision.agreement is not None


def test_a_terminated_agreement_is_no_agreement(
    world: Scenario, db: Database, clock: FrozenClock
) -> None:
    _, _, _, document = _advice(world)
    with db.transaction() as session:
        for agreement in session.scalars(select(Agreement)):
            agreement.status = "terminated"
    decision = _decide(db, clock, document, "LA01")
    assert (decision.visible, decision.allowed) == (True, False)
    assert decision.reason is AccessDenialReason.NO_AGREEMENT
    assert _allowed(_decide(db, clock, document, "PRV01"))  # the custodian needs none


def test_an_agreement_not_covering_the_purpose_is_no_agreement(
    world: Scenario, db: Database, clock: FrozenClock
) -> None:
    # The world's agreement covers safeguarding but not court-order.
    child, _, _, document = _advice(world)
    world.request(child, "ICB01", task_type="dco-quality-assurance", reason=None)
    decision = _decide(
        db, clock, document, "ICB01", purpose=Purpose.COURT_ORDER.value, justification=JUSTIFICATION
    )
    assert (decision.visible, decision.allowed, decision.agreement) == (True, False, None)
    assert decision.reason is AccessDenialReason.NO_AGREEMENT


def test_a_consent_refusal_gives_the_consent_reason(
    world: Scenario, db: Database, clock: FrozenClock
) -> None:
    child, _, _, document = _advice(world)
    refusal = world.consent(child, "2026-11-01T10:00:00+00:00", provision="deny")
    decision = _decide(db, clock, document, "LA01")
    assert (decision.visible, decision.allowed) == (True, False)
    assert decision.reason is AccessDenialReason.CONSENT_REFUSED
    assert decision.consent_ids == (refusal["id"],)
    assert decision.agreement is not None


def test_an_unattached_binary_is_its_uploaders_alone(
    world: Scenario, db: Database, clock: FrozenClock
) -> None:
    uploaded = world.post(
        "/fhir/Binary", PROVIDER, data=pdf_bytes(500), **{"Content-Type": "application/pdf"}
    )
    assert uploaded.status_code == 201
    with db.transaction() as session:
        binary = session.get(BinaryRow, uuid.UUID(uploaded.get_json()["id"]))
        assert binary is not None
        own, document = decide_binary(session, binary, _caller(session, "PRV01"), clock.now())
        assert _allowed(own) and document is None
        other, _ = decide_binary(session, binary, _caller(session, "LA01"), clock.now())
        assert not other.visible


def test_an_attached_binary_follows_its_document(
    world: Scenario, db: Database, clock: FrozenClock
) -> None:
    _, consent, _, document = _advice(world)
    assert (
        world.put(
            f"/fhir/Consent/{consent['id']}", LA, {**consent, "status": "inactive"}
        ).status_code
        == 200
    )
    with db.transaction() as session:
        binary = session.get(
            BinaryRow,
            uuid.UUID(document["content"][0]["attachment"]["url"].removeprefix("Binary/")),
        )
        assert binary is not None
        decision, decided_by = decide_binary(session, binary, _caller(session, "LA01"), clock.now())
        assert decided_by is not None and str(decided_by.id) == document["id"]
        assert decision.reason is AccessDenialReason.CONSENT_WITHDRAWN
        assert not decide_binary(session, binary, _caller(session, "LA02"), clock.now())[0].visible


def test_a_search_by_patient_nhs_number_or_task_finds_what_the_built_query_finds(
    world: Scenario, db: Database
) -> None:
    """`related_readable` runs a statement prepared per shape for a search by patient,
    NHS number or Task (two of a kind at most): for each reader and shape it finds exactly
    what `related_documents` built for the same filters finds, and a shape it does not
    prepare is built as before."""
    first, second = world.child(), world.child()
    tasks = {}
    for child in (first, second):
        world.consent(child)
        tasks[child.id] = world.request(child)
        world.upload(child, tasks[child.id])
    other = world.request(first, owner="PRV02")
    world.upload(first, other, who=OTHER_PROVIDER)
    # The ICB is related to the first child's documents through its quality assurance.
    world.request(first, "ICB01", task_type="dco-quality-assurance", reason=None)
    first_id, second_id = uuid.UUID(first.id), uuid.UUID(second.id)
    first_task = uuid.UUID(tasks[first.id]["id"])
    shapes = [
        DocumentFilters(patient_ids=[first_id]),
        DocumentFilters(patient_ids=[first_id, first_id]),
        DocumentFilters(patient_ids=[first_id, second_id]),  # alternatives
        DocumentFilters(patient_ids=[]),  # no patient can be both: nothing, built
        DocumentFilters(nhs_numbers=[second.number]),
        DocumentFilters(nhs_numbers=[second.number, first.number], task_ids=[first_task]),
        DocumentFilters(patient_ids=[first_id], task_ids=[first_task]),
        DocumentFilters(nhs_numbers=[first.number], authors=[[Token(None, "x")]]),
        DocumentFilters(patient_ids=[first_id] * 3),  # more than prepared: built
        DocumentFilters(patient_ids=[first_id], statuses=["current"]),  # built
        DocumentFilters(),
    ]
    found: dict[str, int] = {}
    with db.transaction() as session:
        for ods in ("LA01", "PRV01", "PRV02", "ICB01"):
            caller = _caller(session, ods)
            for filters in shapes:
                built = readable_documents(session, related_documents(caller, filters))
                prepared = related_readable(session, caller, filters)
                assert sorted(prepared, key=lambda d: d.id) == sorted(built, key=lambda d: d.id)
                found[ods] = found.get(ods, 0) + len(built)
    assert found["ICB01"] > 0 and found["LA01"] > 0 and found["PRV02"] > 0
