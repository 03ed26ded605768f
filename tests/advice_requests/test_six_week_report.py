"""The six-week report on generated months of requests (every fate, forwards, clock
exceptions, receipts and completions at the last and first minute of months, BST starting
and ending) equals the figures computed here, independently, from the stored Task resources
and their versions: receipt and closing days from the instants by `zoneinfo`, not from the
columns the report's SQL reads."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fhir.resources.R4B.measurereport import MeasureReport
from sqlalchemy import select

from exchange.advice_requests.measure_report import measure_report
from exchange.advice_requests.models import TaskRow
from exchange.advice_requests.six_weeks import Month, ReportQuery, SixWeekReport, compute
from exchange.agreements.models import Organisation
from exchange.audit.events import Actor
from exchange.caller import Caller
from exchange.codes import SixWeekMeasure
from exchange.db import Database
from exchange.registry.service import apply_bootstrap
from exchange.registry.specs import parse_bootstrap
from exchange.versions import ResourceVersion
from tests.conftest import DatabaseFactory, world_document
from tests.factories import FrozenClock
from tests.synthetic import generate

LONDON = ZoneInfo("Europe/London")
M = SixWeekMeasure
UNTIL = datetime(2026, 12, 3, 10, tzinfo=UTC)
#: Which ICB commissions each owner (PRV03 belongs to another ICB).
COMMISSIONER = {"PRV01": "ICB01", "PRV02": "ICB01", "PRV03": "ICB02"}
ROLES = {"LA01": "la", "LA02": "la", "PRV01": "provider", "PRV03": "provider", "ICB01": "icb"}


def _world() -> dict[str, Any]:
    document = world_document()
    organisations: list[dict[str, Any]] = document["organisations"]  # type: ignore[assignment]
    organisations += [
        {"ods": "ICB02", "name": "Another ICB", "role": "icb"},
        {"ods": "PRV03", "name": "Another Trust", "role": "provider", "commissioner": "ICB02"},
    ]
    return document


@pytest.fixture(scope="module")
def month_of_requests(backend: str, database_factory: DatabaseFactory) -> Iterator[Database]:
    """About 600 counted requests received February to November 2026, their changes up to
    3 December 2026: generated once per backend, committed, read by every test here."""
    db = Database(database_factory.create(backend))
    with db.transaction() as session:
        apply_bootstrap(session, parse_bootstrap(_world()), FrozenClock(), Actor.operator())
        generate(session, date(2026, 2, 1), date(2026, 11, 30), 600, UNTIL)
    yield db
    db.dispose()


# -- the independent computation ---------------------------------------------------------


@dataclass(frozen=True)
class Fact:
    """What the stored resources say about one request."""

    id: str
    counted: bool
    owner: str
    requester: str
    received: date
    due: date
    status: str
    reason: str | None
    closed: date | None
    clock_exception: bool
    forwarded: bool


def _day(instant: str) -> date:
    return datetime.fromisoformat(instant.replace("Z", "+00:00")).astimezone(LONDON).date()


def _code(concept: dict[str, Any] | None) -> str | None:
    codings = (concept or {}).get("coding") or [{}]
    return codings[0].get("code")


def _facts(db: Database) -> list[Fact]:
    facts = []
    with db.transaction() as session:
        owners_over_time: dict[str, set[str]] = defaultdict(set)
        for version in session.scalars(
            select(ResourceVersion).where(ResourceVersion.resource_type == "Task")
        ):
            owners_over_time[str(version.resource_id)].add(
                version.resource["owner"]["identifier"]["value"]
            )
        for resource in session.scalars(select(TaskRow.resource)):
            status = resource["status"]
            closing = (resource.get("executionPeriod") or {}).get("end")
            facts.append(
                Fact(
                    id=resource["id"],
                    counted=_code(resource["code"]) == "ehcna-health-advice"
                    and _code(resource.get("reasonCode")) in ("6-1-c", "6-1-f", "6-1-h"),
                    owner=resource["owner"]["identifier"]["value"],
                    requester=resource["requester"]["identifier"]["value"],
                    received=_day(resource["authoredOn"]),
                    due=date.fromisoformat(resource["restriction"]["period"]["end"]),
                    status=status,
                    reason=_code(resource.get("statusReason")),
                    closed=_day(closing) if closing else None,
                    clock_exception=any(
                        _code(o["type"]) == "clock-exception" for o in resource.get("output", [])
                    ),
                    forwarded=len(owners_over_time[resource["id"]]) > 1,
                )
            )
    return facts


def _visible(fact: Fact, reporter: str | None) -> bool:
    if reporter is None:
        return True
    if reporter in (fact.owner, fact.requester):
        return True
    return ROLES[reporter] == "icb" and COMMISSIONER.get(fact.owner) == reporter


def _measures(fact: Fact, month: Month, as_at: date) -> set[SixWeekMeasure]:
    """The measures one request counts under (the spec's definitions, said again)."""
    found: set[SixWeekMeasure] = set()
    received = month.first <= fact.received <= month.last
    if received:
        found.add(M.REQUESTS_RECEIVED)
        if fact.status == "rejected" and fact.reason == "not-known-to-service":
            found.add(M.NOT_KNOWN_TO_SERVICE)
        if fact.status == "rejected" and fact.reason in (
            "incompatible-with-duties",
            "adverse-effect-on-functions",
        ):
            found.add(M.DECLINED_WITH_REASONS)
        if fact.forwarded:
            found.add(M.FORWARDED)
    if month.first <= fact.due <= month.last and fact.status not in ("rejected", "cancelled"):
        found.add(M.DUE_IN_PERIOD)
        if fact.status == "completed":
            assert fact.closed is not None
            if fact.closed <= fact.due:
                found.add(M.COMPLETED_WITHIN_6_WEEKS)
            elif fact.clock_exception:
                found.add(M.LATE_WITH_CLOCK_EXCEPTION)
            else:
                found.add(M.COMPLETED_LATE)
    open_then = fact.closed is None or fact.closed > as_at
    if fact.received <= as_at and fact.due < as_at and open_then:
        found.add(M.OUTSTANDING_OVERDUE)
    return found


def _percent(within: int, due: int) -> Decimal | None:
    if not due:
        return None
    return (Decimal(within * 100) / due).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def _expected(
    facts: list[Fact], month: Month, as_at: date, reporter: str | None, **only: str
) -> dict[str, Any]:
    counts: dict[tuple[SixWeekMeasure, str, str], int] = defaultdict(int)
    exceptions: dict[str, str] = {}
    for fact in facts:
        if not fact.counted or not _visible(fact, reporter):
            continue
        if any(getattr(fact, name) != value for name, value in only.items()):
            continue
        measures = _measures(fact, month, as_at)
        for measure in measures:
            counts[measure, "", ""] += 1
            counts[measure, "owner", fact.owner] += 1
            counts[measure, "requester", fact.requester] += 1
        # Late completion is what an overdue request turned out to be: it names the exception.
        late = [
            m
            for m in (M.COMPLETED_LATE, M.LATE_WITH_CLOCK_EXCEPTION, M.OUTSTANDING_OVERDUE)
            if m in measures
        ]
        if late:
            exceptions[fact.id] = late[0].value
        elif M.REQUESTS_RECEIVED in measures and fact.status in ("rejected", "cancelled"):
            exceptions[fact.id] = "closed-without-advice"
    scores = {}
    for key in {(s, o) for (_, s, o) in counts}:
        score = _percent(
            counts.get((M.COMPLETED_WITHIN_6_WEEKS, *key), 0),
            counts.get((M.DUE_IN_PERIOD, *key), 0),
        )
        if score is not None:
            scores[key] = score
    return {"counts": dict(counts), "scores": scores, "exceptions": exceptions}


def _actual(report: SixWeekReport) -> dict[str, Any]:
    counts: dict[tuple[SixWeekMeasure, str, str], int] = {}
    for measure, figure in report.figures.items():
        if figure.total:
            counts[measure, "", ""] = figure.total
        counts.update({(measure, "owner", o): n for o, n in figure.by_owner.items()})
        counts.update({(measure, "requester", r): n for r, n in figure.by_requester.items()})
    scores = {("owner", o): v for o, v in report.percent.by_owner.items()}
    scores.update({("requester", r): v for r, v in report.percent.by_requester.items()})
    if report.percent.total is not None:
        scores["", ""] = report.percent.total
    return {
        "counts": counts,
        "scores": scores,
        "exceptions": {e.task_id: e.exception for e in report.exceptions},
    }


def _caller(db: Database, ods: str) -> Caller:
    with db.transaction() as session:
        organisation = session.scalars(select(Organisation).where(Organisation.ods == ods)).one()
        return Caller(
            organisation.id, ods, organisation.role, False, Actor(client_id="report-test")
        )


MONTHS = ["2026-03", "2026-04", "2026-10", "2026-11", "2026-12"]


@pytest.mark.parametrize("reporter", [None, "LA01", "PRV01", "PRV03", "ICB01"])
def test_the_report_equals_an_independent_count(
    month_of_requests: Database, reporter: str | None
) -> None:
    db = month_of_requests
    facts = _facts(db)
    counted = [f for f in facts if f.counted]
    assert len(counted) >= 500
    # The generated months hold every fate the report distinguishes.
    assert {f.status for f in counted} >= {"completed", "rejected", "cancelled", "accepted"}
    assert any(f.forwarded for f in counted) and any(f.clock_exception for f in counted)
    caller = _caller(db, reporter) if reporter else None
    for text in MONTHS:
        month = Month.parse(text)
        with db.transaction() as session:
            report = compute(session, caller, ReportQuery(month), UNTIL)
        as_at = min(month.last, UNTIL.date())
        assert report.as_at == as_at
        assert _actual(report) == _expected(facts, month, as_at, reporter), text
        assert report.count(M.DUE_IN_PERIOD) == sum(
            report.count(m)
            for m in (M.COMPLETED_WITHIN_6_WEEKS, M.COMPLETED_LATE, M.LATE_WITH_CLOCK_EXCEPTION)
        ) + sum(1 for f in counted if _open_due(f, month, reporter))
        MeasureReport.model_validate(measure_report(report))


def _open_due(fact: Fact, month: Month, reporter: str | None) -> bool:
    return (
        _visible(fact, reporter)
        and month.first <= fact.due <= month.last
        and fact.status in ("requested", "accepted", "in-progress")
    )


def test_owner_and_requester_narrow_the_report(month_of_requests: Database) -> None:
    db = month_of_requests
    facts = _facts(db)
    month = Month.parse("2026-10")
    for only in (
        {"owner": "PRV02"},
        {"requester": "LA02"},
        {"owner": "ICB01", "requester": "LA01"},
    ):
        with db.transaction() as session:
            report = compute(session, None, ReportQuery(month, **only), UNTIL)
        assert _actual(report) == _expected(facts, month, month.last, None, **only)
        assert report.count(M.REQUESTS_RECEIVED) > 0


def test_the_boundaries_fall_on_london_days(month_of_requests: Database) -> None:
    """Receipts at 23:59 and 00:00 London on each side of a month (BST and GMT alike) are
    in the month London says, whatever the UTC date."""
    db = month_of_requests
    with db.transaction() as session:
        rows = session.scalars(select(TaskRow)).all()
        received = {row.authored_on.replace(tzinfo=UTC): row.received_on for row in rows}
    # 1 April 2026 00:00 BST is 31 March 23:00 UTC; 1 November 00:00 GMT is 00:00 UTC.
    assert received[datetime(2026, 3, 31, 23, 0, tzinfo=UTC)] == date(2026, 4, 1)
    assert received[datetime(2026, 3, 31, 22, 59, tzinfo=UTC)] == date(2026, 3, 31)
    assert received[datetime(2026, 11, 1, 0, 0, tzinfo=UTC)] == date(2026, 11, 1)
    assert received[datetime(2026, 10, 31, 23, 59, tzinfo=UTC)] == date(2026, 10, 31)
