"""FHIR R4 search semantics over the API: a parameter's comma-separated values are
alternatives (OR), and its repetitions must all be met (AND). An element that holds one
value (a Task's patient, a document's type) therefore matches a repeated parameter only
with a value every repetition allows; one that holds several (an AuditEvent's entities)
matches each repetition by any of them."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from exchange import codes
from tests.conftest import Tokens
from tests.factories import FrozenClock
from tests.scenario import LA, PROVIDER, Child, Scenario


def _ids(world: Scenario, query: str, who: str = LA) -> set[str]:
    response = world.get(f"/fhir/{query}", who)
    assert response.status_code == 200, response.get_json()
    bundle = response.get_json()
    assert bundle["total"] == len(bundle.get("entry", []))
    return {entry["resource"]["id"] for entry in bundle.get("entry", [])}


def _two_children(world: Scenario) -> tuple[Child, Child, dict[str, Any], dict[str, Any]]:
    first, second = world.child(), world.child()
    for child in (first, second):
        world.consent(child)
    return first, second, world.request(first), world.request(second)


def test_tasks(client: FlaskClient, tokens: Tokens) -> None:
    world = Scenario(client, tokens)
    first, second, one, two = _two_children(world)
    both = {one["id"], two["id"]}
    assert _ids(world, f"Task?patient={first.id},{second.id}") == both
    assert _ids(world, f"Task?patient={first.id}&patient={second.id}") == set()
    assert _ids(world, f"Task?patient={first.id},{second.id}&patient={second.id}") == {two["id"]}
    numbers = f"{codes.NHS_NUMBER_SYSTEM}|{first.number},{second.number}"
    assert _ids(world, f"Task?patient.identifier={numbers}") == both
    assert _ids(world, "Task?status=requested,completed") >= both
    assert _ids(world, "Task?status=requested&status=completed") == set()
    assert _ids(world, f"Task?owner=PRV01&owner=PRV01,PRV02&patient={first.id}") == {one["id"]}
    assert _ids(world, f"Task?owner=PRV01&owner=PRV02&patient={first.id}") == set()


def test_documents(client: FlaskClient, tokens: Tokens) -> None:
    world = Scenario(client, tokens)
    first, second, one, two = _two_children(world)
    documents = {world.upload(first, one)["id"], world.upload(second, two)["id"]}
    first_only = {d for d in documents if d in _ids(world, f"DocumentReference?patient={first.id}")}
    assert len(first_only) == 1
    query = f"DocumentReference?patient={first.id},{second.id}"
    assert _ids(world, query) == documents  # was nothing: alternatives were taken as AND
    assert _ids(world, f"DocumentReference?patient={first.id}&patient={second.id}") == set()
    assert _ids(world, f"DocumentReference?subject={first.id}&patient={first.id}") == first_only
    numbers = f"{codes.NHS_NUMBER_SYSTEM}|{first.number},{second.number}"
    assert _ids(world, f"DocumentReference?patient.identifier={numbers}") == documents
    assert _ids(world, f"DocumentReference?related={one['id']},{two['id']}") == documents
    assert _ids(world, f"DocumentReference?related={one['id']}&related={two['id']}") == set()
    assert _ids(world, f"{query}&status=current,superseded&status=current") == documents
    assert _ids(world, f"{query}&status=current&status=superseded") == set()
    assert _ids(world, f"{query}&custodian=PRV01,LA01&custodian=PRV01") == documents
    assert _ids(world, f"{query}&custodian=PRV01&custodian=LA01") == set()


def test_consents(client: FlaskClient, tokens: Tokens) -> None:
    world = Scenario(client, tokens)
    first, second = world.child(), world.child()
    consents = {world.consent(first)["id"], world.consent(second)["id"]}
    numbers = f"{codes.NHS_NUMBER_SYSTEM}|{first.number},{second.number}"
    assert _ids(world, f"Consent?patient.identifier={numbers}") == consents  # was nothing
    one_number = f"{codes.NHS_NUMBER_SYSTEM}|{first.number}"
    assert _ids(world, f"Consent?patient.identifier={numbers}&patient.identifier={one_number}")
    assert _ids(world, f"Consent?patient={first.id}&patient={second.id}") == set()
    query = f"Consent?patient={first.id},{second.id}"
    assert _ids(world, f"{query}&status=active,inactive&status=active") == consents
    assert _ids(world, f"{query}&status=active&status=inactive") == set()
    contested = f"{codes.code_system_url('consent-review')}|contested"
    assert _ids(world, f"{query}&_tag=decision-maker-not-valid,{contested}") == set()


def test_audit_events(client: FlaskClient, tokens: Tokens, clock: FrozenClock) -> None:
    world = Scenario(client, tokens)
    child = world.child()
    world.consent(child)
    world.get(f"/fhir/Patient/{child.id}", LA)
    clock.advance(seconds=1)
    world.get("/fhir/AuditEvent", LA)  # refused: the case system has no AuditEvent scope
    clock.advance(seconds=1)
    ig = "la01-ig"
    # The case system's events only: the IG client's own searches are audited as it goes.
    client_agent = f"{codes.CLIENT_ID_SYSTEM}|{LA}"
    base = f"AuditEvent?_count=100&agent={client_agent}"
    allowed = _ids(world, f"{base}&outcome=0", ig)
    refused = _ids(world, f"{base}&outcome=4,8", ig)
    assert allowed and refused
    assert _ids(world, f"{base}&outcome=0,4,8", ig) == allowed | refused
    assert _ids(world, f"{base}&outcome=0,4&outcome=4,8", ig) == _ids(
        world, f"{base}&outcome=4", ig
    )
    assert _ids(world, f"{base}&outcome=0&outcome=4", ig) == set()
    patient = f"Patient/{child.id}"
    about = _ids(world, f"AuditEvent?_count=100&entity={patient}", ig)
    assert about
    # An event names several entities: each repetition is met by one of them.
    assert _ids(world, f"AuditEvent?_count=100&entity={patient}&entity={patient},x", ig) == about
    assert _ids(world, f"AuditEvent?_count=100&entity={patient}&entity=Patient/x", ig) == set()
    # ...and several agents (the client and its organisation).
    by_client = _ids(world, f"AuditEvent?_count=100&agent={client_agent}", ig)
    assert by_client
    assert _ids(world, f"AuditEvent?_count=100&agent={client_agent}&agent=LA01", ig) == by_client
    assert _ids(world, f"AuditEvent?_count=100&agent={client_agent}&agent={PROVIDER}", ig) == set()
