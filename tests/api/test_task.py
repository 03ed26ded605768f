"""Advice requests over HTTP: creation and its due date, every row of the transition table
by the right and the wrong party, forwarding, visibility, search and JSON Patch."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.conftest import Tokens
from tests.factories import (
    CB,
    FrozenClock,
    nhs_number,
    output,
    patient_json,
    status_reason,
    task_json,
)

LA, PROVIDER, ICB, OTHER_LA = "la01-case-system", "prv01-epr", "icb01-dco", "la02-case-system"
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"


class Desk:
    """An LA's case desk: registers children and sends requests."""

    seed = 500

    def __init__(self, client: FlaskClient, tokens: Tokens) -> None:
        self.client, self.tokens = client, tokens

    def child(self, born: str = "2015-03-02") -> str:
        Desk.seed += 1
        response = self.client.post("/fhir/Patient", json=patient_json(nhs_number(Desk.seed), born),
                                    headers=self.tokens.headers(LA))
        return str(response.get_json()["id"])

    def request(self, owner: str = "PRV01", **kwargs: Any) -> dict[str, Any]:
        response = self.client.post("/fhir/Task", json=task_json(self.child(), owner, **kwargs), headers=self.tokens.headers(LA))
        assert response.status_code == 201, response.get_json()
        return dict(response.get_json())

    def put(self, who: str, task: dict[str, Any], **changes: Any) -> Any:
        body = {**task, **changes}
        return self.client.put(f"/fhir/Task/{task['id']}", json=body, headers=self.tokens.headers(who))

    def read(self, who: str, task: dict[str, Any]) -> Any:
        return self.client.get(f"/fhir/Task/{task['id']}", headers=self.tokens.headers(who))


@pytest.fixture
def desk(client: FlaskClient, tokens: Tokens) -> Desk:
    return Desk(client, tokens)


def test_create_sets_the_clock(desk: Desk, clock: FrozenClock) -> None:
    task = desk.request()
    assert task["requester"]["identifier"] == {"system": ODS, "value": "LA01"}
    assert task["owner"]["display"] == "Example Community Health Services NHS Trust"
    assert task["authoredOn"] == "2026-11-23T12:00:00.000Z"
    assert task["executionPeriod"]["start"] == "2026-11-23T12:00:00+00:00"
    assert task["restriction"]["period"]["end"] == "2027-01-04"
    assert task["businessStatus"]["coding"][0]["code"] == "on-track"


def test_receipt_in_summer_time_carries_the_bst_offset(desk: Desk, clock: FrozenClock) -> None:
    clock.current = datetime(2026, 6, 30, 23, 30, tzinfo=UTC)  # 00:30 BST on 1 July
    task = desk.request()
    assert task["executionPeriod"]["start"] == "2026-07-01T00:30:00+01:00"
    assert task["restriction"]["period"]["end"] == "2026-08-12"


def test_business_status_follows_the_calendar(desk: Desk, clock: FrozenClock) -> None:
    task = desk.request()
    clock.current = datetime(2026, 12, 28, 12, tzinfo=UTC)
    assert desk.read(LA, task).get_json()["businessStatus"]["coding"][0]["code"] == "due-soon"
    clock.current = datetime(2027, 1, 5, 0, 30, tzinfo=UTC)
    read = desk.read(LA, task).get_json()
    assert read["businessStatus"]["coding"][0]["code"] == "overdue"
    assert read["meta"]["versionId"] == "1"


def test_client_business_status_and_due_date_are_ignored_on_create(desk: Desk) -> None:
    task = desk.request(businessStatus={"text": "done"}, restriction={"period": {"end": "2030-01-01"}})
    assert task["restriction"]["period"]["end"] == "2027-01-04"
    assert task["businessStatus"]["coding"][0]["code"] == "on-track"


@pytest.mark.parametrize(
    ("who", "body", "status"),
    [
        (PROVIDER, {}, 403),  # only LAs request advice
        (LA, {"requester": {"identifier": {"system": ODS, "value": "LA02"}}}, 422),
        (LA, {"status": "accepted"}, 422),
        (LA, {"reasonCode": None}, 422),
        (LA, {"owner": {"identifier": {"system": ODS, "value": "LA02"}}}, 422),  # an LA cannot own advice
        (LA, {"owner": {"identifier": {"system": ODS, "value": "NOPE1"}}}, 422),
    ],
)
def test_create_refusals(desk: Desk, client: FlaskClient, tokens: Tokens, who: str, body: dict[str, Any], status: int) -> None:
    resource = task_json(desk.child())
    resource.update(body)
    resource = {k: v for k, v in resource.items() if v is not None}
    response = client.post("/fhir/Task", json=resource, headers=tokens.headers(who))
    assert response.status_code == status, response.get_json()


def test_create_for_an_invisible_patient_is_404(desk: Desk, client: FlaskClient, tokens: Tokens) -> None:
    response = client.post("/fhir/Task", json=task_json(desk.child()), headers=tokens.headers(OTHER_LA))
    assert response.status_code == 404


def test_annual_review_needs_the_las_date(desk: Desk, client: FlaskClient, tokens: Tokens) -> None:
    resource = task_json(desk.child(), reason="annual-review")
    assert client.post("/fhir/Task", json=resource, headers=tokens.headers(LA)).status_code == 422
    resource["restriction"] = {"period": {"end": "2027-01-10"}}
    created = client.post("/fhir/Task", json=resource, headers=tokens.headers(LA))
    assert created.get_json()["restriction"]["period"]["end"] == "2027-01-10"


def test_dco_qa_must_go_to_an_icb(desk: Desk, client: FlaskClient, tokens: Tokens) -> None:
    resource = task_json(desk.child(), "PRV01", task_type="dco-quality-assurance", reason=None)
    assert client.post("/fhir/Task", json=resource, headers=tokens.headers(LA)).status_code == 422
    resource["owner"]["identifier"]["value"] = "ICB01"
    created = client.post("/fhir/Task", json=resource, headers=tokens.headers(LA))
    assert created.status_code == 201
    assert created.get_json()["restriction"]["period"]["end"] == "2026-12-08"


NOT_KNOWN = [output("not-on-waiting-list", valueBoolean=True), output("not-seen-in-last-12-months", valueBoolean=True)]

# (name, from status, changes, right party, wrong party)
ROWS: list[tuple[str, str, dict[str, Any], str, str]] = [
    ("accept", "requested", {"status": "accepted"}, PROVIDER, LA),
    ("start from requested", "requested", {"status": "in-progress"}, PROVIDER, LA),
    ("start from accepted", "accepted", {"status": "in-progress"}, PROVIDER, LA),
    ("reject not known", "requested", {"status": "rejected", "statusReason": status_reason("not-known-to-service"),
                                       "output": NOT_KNOWN}, PROVIDER, LA),
    ("reject wrong service", "accepted", {"status": "rejected", "statusReason": status_reason("wrong-service")},
     PROVIDER, LA),
    ("reject incompatible", "in-progress", {"status": "rejected", "statusReason": status_reason("incompatible-with-duties"),
                                            "note": None}, PROVIDER, LA),
    ("reject adverse", "requested", {"status": "rejected", "statusReason": status_reason("adverse-effect-on-functions"),
                                     "note": None}, PROVIDER, LA),
    ("cancel", "in-progress", {"status": "cancelled", "statusReason": status_reason("withdrawn-by-requester")}, LA, PROVIDER),
    ("forward", "accepted", {"status": "requested", "statusReason": status_reason("forwarded"),
                             "owner": {"identifier": {"system": ODS, "value": "ICB01"}}}, PROVIDER, LA),
]


def _at(desk: Desk, status: str) -> dict[str, Any]:
    task = desk.request()
    path = {"requested": [], "accepted": ["accepted"], "in-progress": ["accepted", "in-progress"]}[status]
    for step in path:
        response = desk.put(PROVIDER, task, status=step)
        assert response.status_code == 200, response.get_json()
        task = response.get_json()
    return task


def _with(task: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    body = dict(task)
    for key, value in changes.items():
        if key == "note" and value is None:
            body["note"] = [*task.get("note", []), {"text": "Complying would breach our statutory duties to others."}]
        else:
            body[key] = value
    return body


@pytest.mark.parametrize("row", ROWS, ids=[r[0] for r in ROWS])
def test_transition_table(desk: Desk, client: FlaskClient, tokens: Tokens, row: tuple[str, str, dict[str, Any], str, str]) -> None:
    name, start, changes, right, wrong = row
    task = _at(desk, start)
    url = f"/fhir/Task/{task['id']}"
    refused = client.put(url, json=_with(task, changes), headers=tokens.headers(wrong))
    assert refused.status_code == 403, (name, refused.get_json())
    stranger = client.put(url, json=_with(task, changes), headers=tokens.headers(OTHER_LA))
    assert stranger.status_code == 404
    allowed = client.put(url, json=_with(task, changes), headers={**tokens.headers(right), "If-Match": f'W/"{task["meta"]["versionId"]}"'})
    assert allowed.status_code == 200, (name, allowed.get_json())
    assert allowed.get_json()["status"] == changes["status"]
    assert allowed.get_json()["meta"]["versionId"] == str(int(task["meta"]["versionId"]) + 1)


@pytest.mark.parametrize(
    ("start", "changes", "why"),
    [
        ("requested", {"status": "completed"}, "completion needs an advice document"),
        ("accepted", {"status": "requested"}, "back to requested without forwarding"),
        ("in-progress", {"status": "accepted"}, "not in the table"),
        ("requested", {"status": "rejected"}, "no statusReason"),
        ("requested", {"status": "rejected", "statusReason": status_reason("not-known-to-service")}, "no attestations"),
        ("requested", {"status": "rejected", "statusReason": status_reason("not-known-to-service"),
                       "output": NOT_KNOWN[:1]}, "one attestation"),
        ("requested", {"status": "rejected", "statusReason": status_reason("incompatible-with-duties")}, "no written reasons"),
        ("requested", {"status": "rejected", "statusReason": status_reason("incompatible-with-duties"),
                       "note": [{"text": "EHC needs assessment agreed at panel on 2026-11-18."}, {"text": "too short"}]},
         "reasons too short"),
        ("requested", {"status": "rejected", "statusReason": status_reason("forwarded")}, "wrong reason"),
        ("requested", {"restriction": {"period": {"end": "2030-01-01"}}}, "due date is the LA's clock"),
        ("requested", {"code": {"coding": [{"system": f"{CB}/CodeSystem/task-type", "code": "dco-quality-assurance"}]}},
         "code cannot change"),
        ("requested", {"note": []}, "notes are append-only"),
        ("in-progress", {"status": "requested", "statusReason": status_reason("forwarded"),
                         "owner": {"identifier": {"system": ODS, "value": "ICB01"}}}, "forwarding once started"),
    ],
)
def test_owner_changes_the_rules_refuse_with_422(desk: Desk, client: FlaskClient, tokens: Tokens, start: str,
                                                 changes: dict[str, Any], why: str) -> None:
    task = _at(desk, start)
    response = client.put(f"/fhir/Task/{task['id']}", json={**task, **changes}, headers=tokens.headers(PROVIDER))
    assert response.status_code == 422, (why, response.get_json())
    assert response.get_json()["issue"][0]["expression"]


def test_cancel_needs_its_reason(desk: Desk) -> None:
    task = desk.request()
    assert desk.put(LA, task, status="cancelled").status_code == 422


def test_closed_requests_stay_closed(desk: Desk) -> None:
    task = desk.put(LA, desk.request(), status="cancelled", statusReason=status_reason("withdrawn-by-requester")).get_json()
    assert task["businessStatus"]["coding"][0]["code"] == "closed-without-advice"
    assert "end" in task["executionPeriod"]
    assert desk.put(PROVIDER, task, status="accepted").status_code == 422


def test_forwarding_keeps_the_due_date_and_the_previous_owners_read_access(desk: Desk, client: FlaskClient, tokens: Tokens) -> None:
    task = desk.request()
    forwarded = desk.put(PROVIDER, task, status="requested", statusReason=status_reason("forwarded"),
                         owner={"identifier": {"system": ODS, "value": "ICB01"}}).get_json()
    assert forwarded["owner"]["identifier"]["value"] == "ICB01"
    assert forwarded["restriction"] == task["restriction"]
    assert desk.read(PROVIDER, forwarded).status_code == 200  # the previous owner still reads it
    assert desk.put(PROVIDER, forwarded, status="accepted").status_code == 403  # but no longer acts on it
    assert desk.put(ICB, forwarded, status="accepted").status_code == 200
    patient = forwarded["for"]["reference"]
    assert client.get(f"/fhir/{patient}", headers=tokens.headers(ICB)).status_code == 200


def test_forwarding_needs_an_agreement_with_the_new_owner(desk: Desk, db: Any, clock: FrozenClock) -> None:
    from exchange.audit.events import Actor
    from exchange.registry.service import apply_bootstrap, known_roles
    from exchange.registry.specs import parse_bootstrap

    with db.transaction() as session:
        document = {"organisations": [{"ods": "PRV09", "name": "Unlinked Trust", "role": "provider"}]}
        apply_bootstrap(session, parse_bootstrap(document, known_roles(session)), clock, Actor.operator())
    task = desk.request()
    response = desk.put(PROVIDER, task, status="requested", statusReason=status_reason("forwarded"),
                        owner={"identifier": {"system": ODS, "value": "PRV09"}})
    assert response.status_code == 403
    assert response.get_json()["issue"][0]["details"]["coding"][0]["code"] == "no-agreement"


def test_clock_exception_while_open(desk: Desk) -> None:
    task = desk.request()
    exception = output("clock-exception", valueCodeableConcept={"coding": [
        {"system": f"{CB}/CodeSystem/clock-exception-reason", "code": "missed-appointment"}]})
    assert desk.put(PROVIDER, task, output=[exception]).status_code == 422  # needs a note
    noted = [*task["note"], {"text": "Two appointments missed in December."}]
    assert desk.put(LA, task, output=[exception], note=noted).status_code == 403  # the owner's to record
    assert desk.put(PROVIDER, task, output=[exception], note=noted).status_code == 200


def test_requester_may_add_notes(desk: Desk) -> None:
    task = desk.request()
    response = desk.put(LA, task, note=[*task["note"], {"text": "Parents' views attached."}])
    assert response.status_code == 200


def test_json_patch_and_if_match(desk: Desk, client: FlaskClient, tokens: Tokens) -> None:
    task = desk.request()
    url = f"/fhir/Task/{task['id']}"
    patch = [{"op": "replace", "path": "/status", "value": "accepted"}]
    headers = {**tokens.headers(PROVIDER), "Content-Type": "application/json-patch+json"}
    assert client.patch(url, json=patch, headers={**headers, "If-Match": 'W/"9"'}).status_code == 412
    accepted = client.patch(url, json=patch, headers={**headers, "If-Match": 'W/"1"'})
    assert accepted.status_code == 200
    assert accepted.get_json()["status"] == "accepted"
    bad = client.patch(url, json=[{"op": "replace", "path": "/nothing/here", "value": 1}], headers=headers)
    assert bad.status_code == 422
    history = client.get(f"{url}/_history", headers=tokens.headers(LA)).get_json()
    assert [e["resource"]["status"] for e in history["entry"]] == ["accepted", "requested"]
    assert client.get(f"{url}/_history/1", headers=tokens.headers(LA)).get_json()["status"] == "requested"


def test_unrelated_organisation_sees_nothing(desk: Desk, client: FlaskClient, tokens: Tokens) -> None:
    task = desk.request()
    assert desk.read(OTHER_LA, task).status_code == 404
    assert client.get("/fhir/Task", headers=tokens.headers(OTHER_LA)).get_json()["total"] == 0
    assert desk.read(ICB, task).status_code == 404


def test_search(desk: Desk, client: FlaskClient, tokens: Tokens, clock: FrozenClock) -> None:
    first = desk.request()
    clock.advance(days=40)
    second = desk.request("ICB01")
    def ids(query: str, who: str = LA) -> list[str]:
        body = client.get(f"/fhir/Task?{query}", headers=tokens.headers(who)).get_json()
        return [e["resource"]["id"] for e in body["entry"]]

    assert ids("") == [second["id"], first["id"]]
    assert ids(f"owner={ODS}|PRV01") == [first["id"]]
    assert ids("owner:identifier=ICB01") == [second["id"]]
    assert ids(f"requester={ODS}|LA01&_sort=authored-on") == [first["id"], second["id"]]
    assert ids("business-status=due-soon") == [first["id"]]
    assert ids("business-status=on-track") == [second["id"]]
    assert ids("business-status=overdue") == []
    assert ids(f"due=le{first['restriction']['period']['end']}") == [first["id"]]
    assert ids("_sort=due") == [first["id"], second["id"]]
    assert ids(f"code={CB}/CodeSystem/task-type|ehcna-health-advice&status=requested") == [second["id"], first["id"]]
    patient = first["for"]["reference"].removeprefix("Patient/")
    assert ids(f"patient=Patient/{patient}") == [first["id"]]
    assert ids("", PROVIDER) == [first["id"]]
    clock.advance(days=10)
    assert ids("business-status=overdue") == [first["id"]]
    headers = tokens.headers(LA)
    page = client.get("/fhir/Task?_count=1", headers=headers).get_json()
    following = next(link["url"] for link in page["link"] if link["relation"] == "next")
    second_page = client.get(following.replace("http://localhost", ""), headers=headers).get_json()
    assert [e["resource"]["id"] for e in second_page["entry"]] == [first["id"]]

