"""`GET /fhir/Task/$six-week-report` over HTTP (`advice-requests.md`, Reports): requests made,
accepted, forwarded, completed and rejected through the API, then the MeasureReport each party
sees — LA as requester, provider as owner, ICB over what it commissions — its shape as the
spec gives it, the parameters refused, and the audit record."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from fhir.resources.R4B.measurereport import MeasureReport
from flask.testing import FlaskClient
from sqlalchemy import select

from exchange.audit.models import AuditRecord
from exchange.db import Database
from tests.conftest import Tokens
from tests.factories import CB, FrozenClock, output, status_reason
from tests.scenario import ICB, LA, OTHER_LA, OTHER_PROVIDER, PROVIDER, Child, Scenario

REPORT = "/fhir/Task/$six-week-report"
MEASURES = f"{CB}/CodeSystem/six-week-measure"
NOT_KNOWN = [
    output("not-on-waiting-list", valueBoolean=True),
    output("not-seen-in-last-12-months", valueBoolean=True),
]


class Month:
    """October's requests (received 5 October, due 16 November) and what became of them."""

    def __init__(self, world: Scenario, clock: FrozenClock) -> None:
        self.world, self.clock = world, clock
        self.at(2026, 10, 5, 10)
        self.child = world.child()
        world.consent(self.child)
        other_child = world.child(who=OTHER_LA)
        self.on_time = world.request(self.child, "PRV01")
        self.late_with_exception = world.request(self.child, "PRV01")
        self.not_known = world.request(self.child, "PRV02")
        self.late = world.request(self.child, "ICB01")
        self.forwarded = world.request(self.child, "PRV01")
        self.other_la = world.request(other_child, "PRV01", who=OTHER_LA)
        self.at(2026, 10, 6, 9)
        world.forward(self.forwarded, "ICB01")
        self.at(2026, 10, 10, 9)
        self.change(
            self.not_known,
            OTHER_PROVIDER,
            NOT_KNOWN,
            status="rejected",
            statusReason=status_reason("not-known-to-service"),
        )
        self.at(2026, 11, 1, 9)
        exception = output(
            "clock-exception",
            valueCodeableConcept={
                "coding": [
                    {
                        "system": f"{CB}/CodeSystem/clock-exception-reason",
                        "code": "missed-appointment",
                    }
                ]
            },
        )
        self.change(
            self.late_with_exception,
            PROVIDER,
            [exception],
            note=[{"text": "The family missed the appointment."}],
        )
        self.at(2026, 11, 10, 15)
        self.complete(self.on_time, PROVIDER, self.child)
        self.complete(self.other_la, PROVIDER, other_child)
        self.at(2026, 11, 18, 15)
        self.complete(self.late, ICB, self.child)
        self.at(2026, 11, 20, 15)
        self.complete(self.late_with_exception, PROVIDER, self.child)
        self.at(2026, 12, 2, 9)

    def at(self, *moment: int) -> None:
        self.clock.current = datetime(*moment, tzinfo=UTC)  # type: ignore[misc]
        self.world.forget_tokens()

    def change(self, task: dict[str, Any], who: str, outputs: list[Any], **changes: Any) -> None:
        path = f"/fhir/Task/{task['id']}"
        current = self.world.get(path, who).get_json()
        body = {**current, **changes, "output": [*current.get("output", []), *outputs]}
        if "note" in changes:
            body["note"] = [*current.get("note", []), *changes["note"]]
        response = self.world.put(path, who, body)
        assert response.status_code == 200, response.get_json()

    def complete(self, task: dict[str, Any], who: str, child: Child) -> None:
        document = self.world.upload(child, task, who=who)
        advice = output(
            "advice", valueReference={"reference": f"DocumentReference/{document['id']}"}
        )
        self.change(task, who, [advice], status="completed")


@pytest.fixture
def month(client: FlaskClient, tokens: Tokens, clock: FrozenClock) -> Month:
    return Month(Scenario(client, tokens), clock)


def _report(world: Scenario, who: str, **params: str) -> dict[str, Any]:
    response = world.client.get(REPORT, query_string=params, headers=world.auth(who))
    assert response.status_code == 200, response.get_json()
    assert response.mimetype == "application/fhir+json"
    report: dict[str, Any] = response.get_json()
    MeasureReport.model_validate(report)
    return report


def _group(report: dict[str, Any], measure: str) -> dict[str, Any]:
    (group,) = [g for g in report["group"] if g["code"]["coding"][0]["code"] == measure]
    assert group["code"]["coding"][0]["system"] == MEASURES
    return group


def _count(report: dict[str, Any], measure: str) -> int:
    return int(_group(report, measure)["population"][0]["count"])


def _strata(report: dict[str, Any], measure: str, stratifier: str) -> dict[str, Any]:
    (found,) = [
        s for s in _group(report, measure)["stratifier"] if s["code"][0]["text"] == stratifier
    ]
    return {
        s["value"]["text"]: s["measureScore"]["value"]
        if "measureScore" in s
        else s["population"][0]["count"]
        for s in found.get("stratum", [])
    }


def _evaluated(report: dict[str, Any]) -> set[str]:
    return {r["reference"] for r in report.get("evaluatedResource", [])}


def test_the_la_sees_its_requests_by_receipt_and_by_due_date(month: Month) -> None:
    world = month.world
    october = _report(world, LA, period="2026-10")
    assert october["status"] == "complete" and october["type"] == "summary"
    assert october["measure"] == f"{CB}/Measure/six-week-compliance"
    assert october["period"] == {"start": "2026-10-01", "end": "2026-10-31"}
    assert october["date"] == "2026-12-02T09:00:00.000Z"
    assert october["reporter"]["identifier"]["value"] == "LA01"
    assert _count(october, "requests-received") == 5  # not LA02's
    assert _count(october, "not-known-to-service") == 1
    assert _count(october, "forwarded") == 1
    assert _count(october, "due-in-period") == 0
    assert "measureScore" not in _group(october, "percent-within-6-weeks")  # nothing was due
    assert _evaluated(october) == {f"Task/{month.not_known['id']}"}

    november = _report(world, LA, period="2026-11")
    # Due 16 November: the rejected request owed no advice, so four were due.
    assert _count(november, "due-in-period") == 4
    assert _count(november, "completed-within-6-weeks") == 1
    assert _count(november, "completed-late") == 1
    assert _count(november, "late-with-clock-exception") == 1
    assert _count(november, "outstanding-overdue") == 1  # the forwarded one, still open
    score = _group(november, "percent-within-6-weeks")["measureScore"]
    assert score == {"value": 25.0, "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"}
    assert _strata(november, "due-in-period", "owner") == {"ICB01": 2, "PRV01": 2}
    assert _strata(november, "due-in-period", "requester") == {"LA01": 4}
    assert _strata(november, "percent-within-6-weeks", "owner") == {"ICB01": 0.0, "PRV01": 50.0}
    assert _evaluated(november) == {
        f"Task/{month.late['id']}",
        f"Task/{month.late_with_exception['id']}",
        f"Task/{month.forwarded['id']}",
    }
    narrowed = _report(world, LA, period="2026-11", owner="PRV01")
    assert _count(narrowed, "due-in-period") == 2


def test_a_provider_sees_what_it_owns_and_an_icb_what_it_commissions(month: Month) -> None:
    world = month.world
    provider = _report(world, PROVIDER, period="2026-11")
    # PRV01 owns its two, and LA02's; the one it forwarded is the ICB's now.
    assert _count(provider, "due-in-period") == 3
    assert _strata(provider, "due-in-period", "requester") == {"LA01": 2, "LA02": 1}
    assert _count(provider, "completed-within-6-weeks") == 2
    assert _group(provider, "percent-within-6-weeks")["measureScore"]["value"] == 66.7

    icb = _report(world, ICB, period="2026-11")
    assert _strata(icb, "due-in-period", "owner") == {"ICB01": 2, "PRV01": 3}
    assert _count(icb, "due-in-period") == 5
    # Every LA's requests to what the ICB commissions, but not another LA's to nobody of it.
    assert _count(_report(world, ICB, period="2026-10"), "requests-received") == 6

    other_la = _report(world, OTHER_LA, period="2026-11")
    assert _count(other_la, "due-in-period") == 1
    # Naming another owner narrows; it never widens what the caller may see.
    assert _count(_report(world, OTHER_LA, period="2026-11", owner="ICB01"), "due-in-period") == 0


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ({}, 400, "required"),
        ({"period": "2026-13"}, 400, "value"),
        ({"period": "November"}, 400, "value"),
        ({"period": "2027-01"}, 400, "value"),  # not begun on 2 December 2026
        ({"period": "2026-11", "owner": "prv01"}, 400, "invalid"),
        ({"period": "2026-11", "colour": "red"}, 400, "not-supported"),
    ],
)
def test_bad_parameters_are_refused(
    month: Month, query: dict[str, str], status: int, code: str
) -> None:
    response = month.world.client.get(REPORT, query_string=query, headers=month.world.auth(LA))
    assert response.status_code == status
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == code


def test_the_period_is_given_once(month: Month) -> None:
    response = month.world.client.get(
        f"{REPORT}?period=2026-10&period=2026-11", headers=month.world.auth(LA)
    )
    assert response.status_code == 400


def test_the_report_needs_task_read_and_is_audited(
    month: Month, tokens: Tokens, db: Database
) -> None:
    world = month.world
    no_tasks = tokens.headers("la01-case-system", scope="system/Patient.rs")
    assert world.client.get(f"{REPORT}?period=2026-11", headers=no_tasks).status_code == 403
    _report(world, LA, period="2026-11", owner="ICB01")
    with db.transaction() as session:
        payload = session.scalars(
            select(AuditRecord.payload)
            .where(AuditRecord.kind == "rest:operation", AuditRecord.agent_org == "LA01")
            .order_by(AuditRecord.id.desc())
        ).first()
    assert payload is not None
    event = json.loads(payload)
    assert event["subtype"][0]["code"] == "operation"
    (query,) = [e for e in event["entity"] if "query" in e]
    assert base64.b64decode(query["query"]).decode() == "period=2026-11&owner=ICB01"
    details = {d["type"]: d["valueString"] for d in query["detail"]}
    assert details == {
        "report": "six-weeks",
        "period": "2026-11",
        "owner": "ICB01",
        "exceptions": "2",
    }
