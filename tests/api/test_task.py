"""Advice requests over HTTP: creation and its due date, every row of the transition table
by the right and the wrong party, forwarding, visibility, search and JSON Patch."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import and_, exists, select
from sqlalchemy.orm import Session

from exchange.advice_requests.models import TaskParty, TaskRow
from exchange.advice_requests.workflow import OWNER, REQUESTER
from exchange.audit.events import Outcome
from exchange.audit.models import AuditRecord
from exchange.db import Database
from tests.conftest import Tokens
from tests.factories import CB, FrozenClock, output, status_reason, task_json
from tests.scenario import ICB, LA, ODS, OTHER_LA, PROVIDER, Scenario


@pytest.fixture
def world(client: FlaskClient, tokens: Tokens) -> Scenario:
    return Scenario(client, tokens)


def _request(world: Scenario, owner: str = "PRV01", **kwargs: Any) -> dict[str, Any]:
    """An LA's request for a newly registered child."""
    return world.request(world.child(), owner, **kwargs)


def _put(world: Scenario, who: str, task: dict[str, Any], **changes: Any) -> Any:
    return world.put(f"/fhir/Task/{task['id']}", who, {**task, **changes})


def _forward(world: Scenario, task: dict[str, Any], to: str) -> Any:
    """PRV01 forwards its Task to the organisation `to`."""
    return _put(
        world,
        PROVIDER,
        task,
        status="requested",
        statusReason=status_reason("forwarded"),
        owner={"identifier": {"system": ODS, "value": to}},
    )


def _read(world: Scenario, who: str, task: dict[str, Any]) -> Any:
    return world.get(f"/fhir/Task/{task['id']}", who)


def _anew(world: Scenario) -> Scenario:
    """The same clients after the clock has moved on by days: new tokens (a token lives
    for minutes, and the scenario keeps one per client)."""
    return Scenario(world.client, world.tokens)


def test_create_sets_the_clock(world: Scenario, clock: FrozenClock) -> None:
    task = _request(world)
    assert task["requester"]["identifier"] == {"system": ODS, "value": "LA01"}
    assert task["owner"]["display"] == "Example Community Health Services NHS Trust"
    assert task["authoredOn"] == "2026-11-23T12:00:00.000Z"
    assert task["executionPeriod"]["start"] == "2026-11-23T12:00:00+00:00"
    assert task["restriction"]["period"]["end"] == "2027-01-04"
    assert task["businessStatus"]["coding"][0]["code"] == "on-track"


def test_receipt_in_summer_time_carries_the_bst_offset(world: Scenario, clock: FrozenClock) -> None:
    clock.current = datetime(2026, 6, 30, 23, 30, tzinfo=UTC)  # 00:30 BST on 1 July
    task = _request(world)
    assert task["executionPeriod"]["start"] == "2026-07-01T00:30:00+01:00"
    assert task["restriction"]["period"]["end"] == "2026-08-12"


def test_business_status_follows_the_calendar(world: Scenario, clock: FrozenClock) -> None:
    task = _request(world)
    clock.current = datetime(2026, 12, 28, 12, tzinfo=UTC)
    assert (
        _read(_anew(world), LA, task).get_json()["businessStatus"]["coding"][0]["code"]
        == "due-soon"
    )
    clock.current = datetime(2027, 1, 5, 0, 30, tzinfo=UTC)
    read = _read(_anew(world), LA, task).get_json()
    assert read["businessStatus"]["coding"][0]["code"] == "overdue"
    assert read["meta"]["versionId"] == "1"


def test_client_business_status_and_due_date_are_ignored_on_create(world: Scenario) -> None:
    task = _request(
        world, businessStatus={"text": "done"}, restriction={"period": {"end": "2030-01-01"}}
    )
    assert task["restriction"]["period"]["end"] == "2027-01-04"
    assert task["businessStatus"]["coding"][0]["code"] == "on-track"


@pytest.mark.parametrize(
    ("who", "body", "status"),
    [
        (PROVIDER, {}, 403),  # only LAs request advice
        (LA, {"requester": {"identifier": {"system": ODS, "value": "LA02"}}}, 422),
        (LA, {"status": "accepted"}, 422),
        (LA, {"reasonCode": None}, 422),
        (
            LA,
            {"owner": {"identifier": {"system": ODS, "value": "LA02"}}},
            422,
        ),  # an LA cannot own advice
        (LA, {"owner": {"identifier": {"system": ODS, "value": "NOPE1"}}}, 422),
    ],
)
def test_create_refusals(world: Scenario, who: str, body: dict[str, Any], status: int) -> None:
    resource = task_json(world.child().id)
    resource.update(body)
    resource = {k: v for k, v in resource.items() if v is not None}
    response = world.post("/fhir/Task", who, resource)
    assert response.status_code == status, response.get_json()


def test_create_for_an_invisible_patient_is_404(world: Scenario) -> None:
    response = world.post("/fhir/Task", OTHER_LA, task_json(world.child().id))
    assert response.status_code == 404


def test_annual_review_needs_the_las_date(world: Scenario) -> None:
    resource = task_json(world.child().id, reason="annual-review")
    assert world.post("/fhir/Task", LA, resource).status_code == 422
    resource["restriction"] = {"period": {"end": "2027-01-10"}}
    created = world.post("/fhir/Task", LA, resource)
    assert created.get_json()["restriction"]["period"]["end"] == "2027-01-10"


def test_dco_qa_must_go_to_an_icb(world: Scenario) -> None:
    resource = task_json(world.child().id, "PRV01", task_type="dco-quality-assurance", reason=None)
    assert world.post("/fhir/Task", LA, resource).status_code == 422
    resource["owner"]["identifier"]["value"] = "ICB01"
    created = world.post("/fhir/Task", LA, resource)
    assert created.status_code == 201
    assert created.get_json()["restriction"]["period"]["end"] == "2026-12-08"


NOT_KNOWN = [
    output("not-on-waiting-list", valueBoolean=True),
    output("not-seen-in-last-12-months", valueBoolean=True),
]

# (name, from status, changes, right party, wrong party)
ROWS: list[tuple[str, str, dict[str, Any], str, str]] = [
    ("accept", "requested", {"status": "accepted"}, PROVIDER, LA),
    ("start from requested", "requested", {"status": "in-progress"}, PROVIDER, LA),
    ("start from accepted", "accepted", {"status": "in-progress"}, PROVIDER, LA),
    (
        "reject not known",
        "requested",
        {
            "status": "rejected",
            "statusReason": status_reason("not-known-to-service"),
            "output": NOT_KNOWN,
        },
        PROVIDER,
        LA,
    ),
    (
        "reject wrong service",
        "accepted",
        {"status": "rejected", "statusReason": status_reason("wrong-service")},
        PROVIDER,
        LA,
    ),
    (
        "reject incompatible",
        "in-progress",
        {
            "status": "rejected",
            "statusReason": status_reason("incompatible-with-duties"),
            "note": None,
        },
        PROVIDER,
        LA,
    ),
    (
        "reject adverse",
        "requested",
        {
            "status": "rejected",
            "statusReason": status_reason("adverse-effect-on-functions"),
            "note": None,
        },
        PROVIDER,
        LA,
    ),
    (
        "cancel",
        "in-progress",
        {"status": "cancelled", "statusReason": status_reason("withdrawn-by-requester")},
        LA,
        PROVIDER,
    ),
    (
        "forward",
        "accepted",
        {
            "status": "requested",
            "statusReason": status_reason("forwarded"),
            "owner": {"identifier": {"system": ODS, "value": "ICB01"}},
        },
        PROVIDER,
        LA,
    ),
]


def _at(world: Scenario, status: str) -> dict[str, Any]:
    task = _request(world)
    path = {"requested": [], "accepted": ["accepted"], "in-progress": ["accepted", "in-progress"]}[
        status
    ]
    for step in path:
        response = _put(world, PROVIDER, task, status=step)
        assert response.status_code == 200, response.get_json()
        task = response.get_json()
    return task


def _with(task: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    body = dict(task)
    for key, value in changes.items():
        if key == "note" and value is None:
            body["note"] = [
                *task.get("note", []),
                {"text": "Complying would breach our statutory duties to others."},
            ]
        else:
            body[key] = value
    return body


@pytest.mark.parametrize("row", ROWS, ids=[r[0] for r in ROWS])
def test_transition_table(world: Scenario, row: tuple[str, str, dict[str, Any], str, str]) -> None:
    name, start, changes, right, wrong = row
    task = _at(world, start)
    url = f"/fhir/Task/{task['id']}"
    refused = world.put(url, wrong, _with(task, changes))
    assert refused.status_code == 403, (name, refused.get_json())
    stranger = world.put(url, OTHER_LA, _with(task, changes))
    assert stranger.status_code == 404
    allowed = world.put(
        url, right, _with(task, changes), **{"If-Match": f'W/"{task["meta"]["versionId"]}"'}
    )
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
        (
            "requested",
            {"status": "rejected", "statusReason": status_reason("not-known-to-service")},
            "no attestations",
        ),
        (
            "requested",
            {
                "status": "rejected",
                "statusReason": status_reason("not-known-to-service"),
                "output": NOT_KNOWN[:1],
            },
            "one attestation",
        ),
        (
            "requested",
            {"status": "rejected", "statusReason": status_reason("incompatible-with-duties")},
            "no written reasons",
        ),
        (
            "requested",
            {
                "status": "rejected",
                "statusReason": status_reason("incompatible-with-duties"),
                "note": [
                    {"text": "EHC needs assessment agreed at panel on 2026-11-18."},
                    {"text": "too short"},
                ],
            },
            "reasons too short",
        ),
        (
            "requested",
            {"status": "rejected", "statusReason": status_reason("forwarded")},
            "wrong reason",
        ),
        (
            "requested",
            {"restriction": {"period": {"end": "2030-01-01"}}},
            "due date is the LA's clock",
        ),
        (
            "requested",
            {
                "code": {
                    "coding": [
                        {"system": f"{CB}/CodeSystem/task-type", "code": "dco-quality-assurance"}
                    ]
                }
            },
            "code cannot change",
        ),
        ("requested", {"note": []}, "notes are append-only"),
        (
            "in-progress",
            {
                "status": "requested",
                "statusReason": status_reason("forwarded"),
                "owner": {"identifier": {"system": ODS, "value": "ICB01"}},
            },
            "forwarding once started",
        ),
    ],
)
def test_owner_changes_the_rules_refuse_with_422(
    world: Scenario, start: str, changes: dict[str, Any], why: str
) -> None:
    task = _at(world, start)
    response = world.put(f"/fhir/Task/{task['id']}", PROVIDER, {**task, **changes})
    assert response.status_code == 422, (why, response.get_json())
    assert response.get_json()["issue"][0]["expression"]


def test_cancel_needs_its_reason(world: Scenario) -> None:
    task = _request(world)
    assert _put(world, LA, task, status="cancelled").status_code == 422


def test_closed_requests_stay_closed(world: Scenario) -> None:
    task = _put(
        world,
        LA,
        _request(world),
        status="cancelled",
        statusReason=status_reason("withdrawn-by-requester"),
    ).get_json()
    assert task["businessStatus"]["coding"][0]["code"] == "closed-without-advice"
    assert "end" in task["executionPeriod"]
    assert _put(world, PROVIDER, task, status="accepted").status_code == 422


def test_forwarding_keeps_the_due_date_and_the_previous_owners_read_access(world: Scenario) -> None:
    task = _request(world)
    forwarded = _forward(world, task, "ICB01").get_json()
    assert forwarded["owner"]["identifier"]["value"] == "ICB01"
    assert forwarded["restriction"] == task["restriction"]
    assert _read(world, PROVIDER, forwarded).status_code == 200  # the previous owner still reads it
    assert (
        _put(world, PROVIDER, forwarded, status="accepted").status_code == 403
    )  # but no longer acts on it
    assert _put(world, ICB, forwarded, status="accepted").status_code == 200
    patient = forwarded["for"]["reference"]
    assert world.get(f"/fhir/{patient}", ICB).status_code == 200


def test_forwarding_needs_an_agreement_with_the_new_owner(
    world: Scenario, db: Any, clock: FrozenClock
) -> None:
    from exchange.audit.events import Actor
    from exchange.registry.service import apply_bootstrap, known_roles
    from exchange.registry.specs import parse_bootstrap

    with db.transaction() as session:
        document = {
            "organisations": [{"ods": "PRV09", "name": "Unlinked Trust", "role": "provider"}]
        }
        apply_bootstrap(
            session, parse_bootstrap(document, known_roles(session)), clock, Actor.operator()
        )
    task = _request(world)
    response = _forward(world, task, "PRV09")
    assert response.status_code == 403
    assert response.get_json()["issue"][0]["details"]["coding"][0]["code"] == "no-agreement"


def test_a_refused_change_is_audited_with_the_task_it_concerned(
    world: Scenario, db: Database
) -> None:
    task = _request(world)
    assert _put(world, LA, task, status="accepted").status_code == 403  # the owner's to accept
    with db.transaction() as session:
        refused = session.scalars(
            select(AuditRecord).where(AuditRecord.outcome == Outcome.for_status(403).value)
        ).all()
    assert len(refused) == 1
    event = json.loads(refused[0].payload)
    assert event["outcomeDesc"] == "forbidden"
    named = [
        entity["what"]["reference"]
        for entity in event["entity"]
        if "reference" in entity.get("what", {})
    ]
    assert named == [f"Task/{task['id']}", task["for"]["reference"]]
    assert refused[0].patient_id == uuid.UUID(task["for"]["reference"].removeprefix("Patient/"))


def test_clock_exception_while_open(world: Scenario) -> None:
    task = _request(world)
    exception = output(
        "clock-exception",
        valueCodeableConcept={
            "coding": [
                {"system": f"{CB}/CodeSystem/clock-exception-reason", "code": "missed-appointment"}
            ]
        },
    )
    assert _put(world, PROVIDER, task, output=[exception]).status_code == 422  # needs a note
    noted = [*task["note"], {"text": "Two appointments missed in December."}]
    assert (
        _put(world, LA, task, output=[exception], note=noted).status_code == 403
    )  # the owner's to record
    assert _put(world, PROVIDER, task, output=[exception], note=noted).status_code == 200


def test_requester_may_add_notes(world: Scenario) -> None:
    task = _request(world)
    response = _put(world, LA, task, note=[*task["note"], {"text": "Parents' views attached."}])
    assert response.status_code == 200


def test_json_patch_and_if_match(world: Scenario) -> None:
    task = _request(world)
    url = f"/fhir/Task/{task['id']}"
    patch = [{"op": "replace", "path": "/status", "value": "accepted"}]
    assert world.patch(url, PROVIDER, patch, **{"If-Match": 'W/"9"'}).status_code == 412
    accepted = world.patch(url, PROVIDER, patch, **{"If-Match": 'W/"1"'})
    assert accepted.status_code == 200
    assert accepted.get_json()["status"] == "accepted"
    bad = world.patch(url, PROVIDER, [{"op": "replace", "path": "/nothing/here", "value": 1}])
    assert bad.status_code == 422
    history = world.get(f"{url}/_history", LA).get_json()
    assert [e["resource"]["status"] for e in history["entry"]] == ["accepted", "requested"]
    assert world.get(f"{url}/_history/1", LA).get_json()["status"] == "requested"


def test_unrelated_organisation_sees_nothing(world: Scenario) -> None:
    task = _request(world)
    assert _read(world, OTHER_LA, task).status_code == 404
    assert world.get("/fhir/Task", OTHER_LA).get_json()["total"] == 0
    assert _read(world, ICB, task).status_code == 404


def test_search(world: Scenario, clock: FrozenClock) -> None:
    first = _request(world)
    clock.advance(days=40)
    world = _anew(world)
    second = _request(world, "ICB01")

    def ids(query: str, who: str = LA) -> list[str]:
        body = world.get(f"/fhir/Task?{query}", who).get_json()
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
    assert ids(f"code={CB}/CodeSystem/task-type|ehcna-health-advice&status=requested") == [
        second["id"],
        first["id"],
    ]
    patient = first["for"]["reference"].removeprefix("Patient/")
    assert ids(f"patient=Patient/{patient}") == [first["id"]]
    assert ids("", PROVIDER) == [first["id"]]
    clock.advance(days=10)
    world = _anew(world)
    assert ids("business-status=overdue") == [first["id"]]
    page = world.get("/fhir/Task?_count=1", LA).get_json()
    following = next(link["url"] for link in page["link"] if link["relation"] == "next")
    second_page = world.get(following.replace("http://localhost", ""), LA).get_json()
    assert [e["resource"]["id"] for e in second_page["entry"]] == [first["id"]]


def _ids(world: Scenario, who: str, query: str) -> set[str]:
    bundle = world.get(f"/fhir/Task?{query}", who).get_json()
    return {entry["resource"]["id"] for entry in bundle.get("entry", [])}


def test_work_lists_follow_the_owner_and_never_show_anothers_tasks(
    world: Scenario, db: Database
) -> None:
    # The caller's own work list skips the "takes part" probe (implied: a Task's owner
    # and requester are always its parties); anyone else's list still asks it.
    kept, forwarded = _request(world), _request(world)
    assert _forward(world, forwarded, "ICB01").status_code == 200
    own = f"owner={ODS}|PRV01&status=requested"
    assert {kept["id"]} <= _ids(world, PROVIDER, own)
    assert forwarded["id"] not in _ids(world, PROVIDER, own)
    assert forwarded["id"] in _ids(world, ICB, f"owner={ODS}|ICB01")
    assert kept["id"] in _ids(world, LA, f"requester={ODS}|LA01")
    # Another organisation asking for PRV01's or LA01's list sees none of these Tasks.
    for query in (own, f"requester={ODS}|LA01", f"owner={ODS}|PRV01,{ODS}|ICB01"):
        assert not {kept["id"], forwarded["id"]} & _ids(world, OTHER_LA, query)
    with db.transaction() as session:
        owners_and_requesters_are_parties(session)


def owners_and_requesters_are_parties(session: Session) -> None:
    """The invariant the work lists rely on, over every Task stored."""
    for column, role in ((TaskRow.owner_id, OWNER), (TaskRow.requester_id, REQUESTER)):
        missing = session.scalars(
            select(TaskRow.id).where(
                ~exists().where(
                    and_(
                        TaskParty.task_id == TaskRow.id,
                        TaskParty.organisation_id == column,
                        TaskParty.role == role,
                    )
                )
            )
        ).all()
        assert missing == []
