"""The monthly six-week report (`advice-requests.md`, Reports): the share of statutory health
advice returned within 6 weeks, the cohorts behind it, and the exceptions that explain it.

Only `ehcna-health-advice` requests under SEND Regulations 2014 reg 6(1)(c), (f) or (h) are
counted (reg 8(1) sets their 6 weeks). Three cohorts, each counted in one SQL pass grouped by
(current owner, requesting LA), so the figures and both stratifiers come from the same rows:

- by **receipt** in the month: received, not known to the service, declined with written
  reasons (s.31(2) of the Children and Families Act 2014), forwarded;
- by **due date** in the month: due, completed within 6 weeks, completed late, late with a
  clock exception (reg 8(2)). A request closed without advice (rejected or cancelled) owed
  no advice, so it is not counted as due: it shows in its receipt month and in the
  exceptions, and does not drag the percentage down;
- **as at** the end of the month (today, for the current month): outstanding and overdue,
  i.e. open on that day and past its due date (a request closed later still counts: it was
  outstanding then).

Outcomes in the receipt and due cohorts are as known now, so last month's report fills in
as late advice arrives; only the as-at cohort is a snapshot. Every date is a Europe/London
calendar date, stored at the moment of receipt and closure (`clock.london_date`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final

from sqlalchemy import ColumnElement, and_, case, func, not_, or_, select, true
from sqlalchemy.orm import Session, aliased

from exchange.advice_requests.clock_rules import CLOSED_WITHOUT_ADVICE, OPEN_STATUSES
from exchange.advice_requests.models import TaskRow
from exchange.advice_requests.profile import typed_items
from exchange.agreements.models import Organisation
from exchange.audit.events import Action, Actor, AuditEntry, AuditKind, Outcome
from exchange.audit.service import record
from exchange.caller import Caller
from exchange.clock import london_date
from exchange.codes import (
    LA_CASE_REFERENCE_SYSTEM,
    OrganisationRole,
    Regulation,
    SixWeekMeasure,
    TaskOutputType,
    TaskStatusReason,
    TaskType,
)
from exchange.errors import DomainError

Measure = SixWeekMeasure
#: The reasons whose advice is due within 6 weeks (not annual reviews: the LA sets their date).
COUNTED_REASONS: Final = (Regulation.REG_6_1_C, Regulation.REG_6_1_F, Regulation.REG_6_1_H)
#: Refusals under s.31(2) CFA 2014, which need written reasons.
DECLINED_REASONS: Final = (
    TaskStatusReason.INCOMPATIBLE_WITH_DUTIES,
    TaskStatusReason.ADVERSE_EFFECT_ON_FUNCTIONS,
)
#: The measures of each cohort, in the CodeSystem's order.
RECEIPT_MEASURES: Final = (
    Measure.REQUESTS_RECEIVED,
    Measure.NOT_KNOWN_TO_SERVICE,
    Measure.DECLINED_WITH_REASONS,
    Measure.FORWARDED,
)
DUE_MEASURES: Final = (
    Measure.DUE_IN_PERIOD,
    Measure.COMPLETED_WITHIN_6_WEEKS,
    Measure.COMPLETED_LATE,
    Measure.LATE_WITH_CLOCK_EXCEPTION,
)
AS_AT_MEASURES: Final = (Measure.OUTSTANDING_OVERDUE,)
#: How an exception that is not a measure is named: closed without advice.
CLOSED_WITHOUT_ADVICE_EXCEPTION: Final = "closed-without-advice"
_MONTH = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")


class ReportPeriodError(DomainError):
    """The month cannot be reported on (malformed, or not begun yet)."""

    code = "invalid-parameter"


@dataclass(frozen=True, slots=True, order=True)
class Month:
    """A calendar month (Europe/London)."""

    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Month:
        """`YYYY-MM`, else ReportPeriodError."""
        found = _MONTH.fullmatch(text.strip())
        if found is None or int(found[1]) < 1900:
            raise ReportPeriodError(f"the period must be a month, YYYY-MM (not {text[:20]!r})")
        return cls(int(found[1]), int(found[2]))

    @classmethod
    def of(cls, day: date) -> Month:
        """The month `day` falls in."""
        return cls(day.year, day.month)

    @property
    def first(self) -> date:
        """Its first day."""
        return date(self.year, self.month, 1)

    @property
    def last(self) -> date:
        """Its last day."""
        return self.next().first - timedelta(days=1)

    def next(self) -> Month:
        """The month after."""
        return Month(self.year + 1, 1) if self.month == 12 else Month(self.year, self.month + 1)

    def previous(self) -> Month:
        """The month before."""
        return Month(self.year - 1, 12) if self.month == 1 else Month(self.year, self.month - 1)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


@dataclass(frozen=True, slots=True)
class ReportQuery:
    """What to report on: a month, optionally one current owner or one requesting LA."""

    month: Month
    owner: str | None = None
    requester: str | None = None


@dataclass(frozen=True, slots=True)
class Figure:
    """One count measure: the total and its strata (ODS code -> count, only non-zero)."""

    measure: SixWeekMeasure
    total: int
    by_owner: dict[str, int]
    by_requester: dict[str, int]


@dataclass(frozen=True, slots=True)
class Score:
    """`percent-within-6-weeks`: None where nothing was due (no score rather than 0%)."""

    total: Decimal | None
    by_owner: dict[str, Decimal]
    by_requester: dict[str, Decimal]


@dataclass(frozen=True, slots=True)
class ReportException:
    """A request that was late, is overdue, or was closed without advice."""

    task_id: str
    owner: str
    requester: str
    case_reference: str
    received: date
    due: date
    #: The measure it counts under, or `closed-without-advice`.
    exception: str
    #: Its `task-status-reason` (why it was closed or forwarded), if any.
    reason: str
    #: Days after the due date it was completed, or was still open at the report's date.
    days_late: int | None
    #: The clock-exception reasons recorded (reg 8(2)), `;`-separated.
    clock_exception: str


@dataclass(frozen=True, slots=True)
class SixWeekReport:
    """The figures of one month as one organisation (or the operator) may see them."""

    month: Month
    #: The day the outstanding-overdue cohort is taken on.
    as_at: date
    generated: datetime
    #: The reporting organisation's ODS code; None for the operator (every request).
    reporter: str | None
    reporter_name: str | None
    figures: dict[SixWeekMeasure, Figure]
    percent: Score
    exceptions: list[ReportException] = field(default_factory=list)

    def count(self, measure: SixWeekMeasure) -> int:
        """The total of a count measure."""
        return self.figures[measure].total


def _counted() -> ColumnElement[bool]:
    return and_(
        TaskRow.task_type == TaskType.EHCNA_HEALTH_ADVICE,
        TaskRow.reason.in_([reason.value for reason in COUNTED_REASONS]),
    )


def in_report_scope(caller: Caller | None) -> ColumnElement[bool]:
    """The requests the caller may report on: as requester or current owner, and for an ICB
    every request owned by an organisation it commissions. The operator sees them all."""
    if caller is None:
        return true()
    mine = [
        TaskRow.requester_id == caller.organisation_id,
        TaskRow.owner_id == caller.organisation_id,
    ]
    if caller.role == OrganisationRole.ICB:
        commissioned = select(Organisation.id).where(
            Organisation.commissioner_ods == caller.organisation
        )
        mine.append(TaskRow.owner_id.in_(commissioned))
    return or_(*mine)


def _open_on(day: date) -> ColumnElement[bool]:
    """Open at the end of `day`: open now, or closed after it. (A closed request without
    its closing day is taken as closed: it cannot be shown to have been open.)"""
    return or_(TaskRow.status.in_(sorted(OPEN_STATUSES)), TaskRow.closed_on > day)


def _cohort_clauses(month: Month, as_at: date) -> dict[SixWeekMeasure, ColumnElement[bool]]:
    """Each count measure as a condition on one request."""
    received = TaskRow.received_on.between(month.first, month.last)
    due = and_(
        TaskRow.due_date.between(month.first, month.last),
        TaskRow.status.not_in(sorted(CLOSED_WITHOUT_ADVICE)),
    )
    completed = and_(due, TaskRow.status == "completed")
    # A completion without its day is not known to be on time, so it is late.
    late = and_(
        completed,
        or_(TaskRow.completed_on.is_(None), TaskRow.completed_on > TaskRow.due_date),
    )
    rejected = and_(received, TaskRow.status == "rejected")
    return {
        Measure.REQUESTS_RECEIVED: received,
        Measure.NOT_KNOWN_TO_SERVICE: and_(
            rejected, TaskRow.status_reason == TaskStatusReason.NOT_KNOWN_TO_SERVICE
        ),
        Measure.DECLINED_WITH_REASONS: and_(
            rejected, TaskRow.status_reason.in_([r.value for r in DECLINED_REASONS])
        ),
        Measure.FORWARDED: and_(received, TaskRow.forwarded),
        Measure.DUE_IN_PERIOD: due,
        Measure.COMPLETED_WITHIN_6_WEEKS: and_(completed, TaskRow.completed_on <= TaskRow.due_date),
        Measure.COMPLETED_LATE: and_(late, not_(TaskRow.clock_exception)),
        Measure.LATE_WITH_CLOCK_EXCEPTION: and_(late, TaskRow.clock_exception),
        Measure.OUTSTANDING_OVERDUE: and_(
            TaskRow.received_on <= as_at, TaskRow.due_date < as_at, _open_on(as_at)
        ),
    }


@dataclass(frozen=True, slots=True)
class _Parties:
    """The current owner and requester as ODS codes, joined once per query."""

    owner: Any = field(default_factory=lambda: aliased(Organisation))
    requester: Any = field(default_factory=lambda: aliased(Organisation))

    def narrowed(self, query: Any, caller: Caller | None, wanted: ReportQuery) -> Any:
        query = query.join(self.owner, self.owner.id == TaskRow.owner_id).join(
            self.requester, self.requester.id == TaskRow.requester_id
        )
        query = query.where(_counted(), in_report_scope(caller))
        if wanted.owner is not None:
            query = query.where(self.owner.ods == wanted.owner)
        if wanted.requester is not None:
            query = query.where(self.requester.ods == wanted.requester)
        return query


def _cohort_counts(
    session: Session,
    caller: Caller | None,
    wanted: ReportQuery,
    cohort: ColumnElement[bool],
    measures: Mapping[SixWeekMeasure, ColumnElement[bool]],
) -> dict[tuple[str, str], dict[SixWeekMeasure, int]]:
    """One SQL pass over one cohort: (owner, requester) -> count of each measure."""
    parties = _Parties()
    columns = [func.sum(case((clause, 1), else_=0)) for clause in measures.values()]
    query = parties.narrowed(
        select(parties.owner.ods, parties.requester.ods, *columns), caller, wanted
    )
    query = query.where(cohort).group_by(parties.owner.ods, parties.requester.ods)
    return {
        (owner, requester): {m: int(n or 0) for m, n in zip(measures, counts, strict=True)}
        for owner, requester, *counts in session.execute(query)
    }


def _figure(
    measure: SixWeekMeasure, pairs: Mapping[tuple[str, str], Mapping[SixWeekMeasure, int]]
) -> Figure:
    by_owner: dict[str, int] = {}
    by_requester: dict[str, int] = {}
    for (owner, requester), counts in pairs.items():
        if counts[measure]:
            by_owner[owner] = by_owner.get(owner, 0) + counts[measure]
            by_requester[requester] = by_requester.get(requester, 0) + counts[measure]
    return Figure(
        measure,
        sum(by_owner.values()),
        dict(sorted(by_owner.items())),
        dict(sorted(by_requester.items())),
    )


def percentage(within: int, due: int) -> Decimal | None:
    """`within / due` as a percentage to one decimal place (half up); None if nothing was due."""
    if due == 0:
        return None
    return (Decimal(100 * within) / Decimal(due)).quantize(Decimal("0.1"), ROUND_HALF_UP)


def _scores(within: Mapping[str, int], due: Mapping[str, int]) -> dict[str, Decimal]:
    return {
        key: score
        for key in sorted(due)
        if (score := percentage(within.get(key, 0), due[key])) is not None
    }


def _exception_rows(
    session: Session,
    caller: Caller | None,
    wanted: ReportQuery,
    clauses: Mapping[SixWeekMeasure, ColumnElement[bool]],
    as_at: date,
) -> list[ReportException]:
    """The requests behind the exceptions, each under the one heading it falls in."""
    closed = and_(
        clauses[Measure.REQUESTS_RECEIVED], TaskRow.status.in_(sorted(CLOSED_WITHOUT_ADVICE))
    )
    # A request due in the month and completed late after it ended was also outstanding at
    # the month's end: it is listed as what it turned out to be, completed late.
    heading = case(
        (clauses[Measure.COMPLETED_LATE], Measure.COMPLETED_LATE.value),
        (clauses[Measure.LATE_WITH_CLOCK_EXCEPTION], Measure.LATE_WITH_CLOCK_EXCEPTION.value),
        (clauses[Measure.OUTSTANDING_OVERDUE], Measure.OUTSTANDING_OVERDUE.value),
        else_=CLOSED_WITHOUT_ADVICE_EXCEPTION,
    )
    parties = _Parties()
    query = parties.narrowed(
        select(TaskRow, parties.owner.ods, parties.requester.ods, heading), caller, wanted
    ).where(
        or_(
            clauses[Measure.OUTSTANDING_OVERDUE],
            clauses[Measure.COMPLETED_LATE],
            clauses[Measure.LATE_WITH_CLOCK_EXCEPTION],
            closed,
        )
    )
    order = {
        Measure.OUTSTANDING_OVERDUE.value: 0,
        Measure.COMPLETED_LATE.value: 1,
        Measure.LATE_WITH_CLOCK_EXCEPTION.value: 2,
        CLOSED_WITHOUT_ADVICE_EXCEPTION: 3,
    }
    found = [
        _exception(row, owner, requester, kind, as_at)
        for row, owner, requester, kind in session.execute(query.order_by(TaskRow.due_date))
    ]
    return sorted(found, key=lambda e: (order[e.exception], e.due, e.owner, e.task_id))


def _exception(row: TaskRow, owner: str, requester: str, kind: str, as_at: date) -> ReportException:
    resource = row.resource
    references = [
        str(i.get("value", ""))
        for i in resource.get("identifier", [])
        if isinstance(i, dict) and i.get("system") == LA_CASE_REFERENCE_SYSTEM
    ]
    exceptions = [
        str(coding.get("code", ""))
        for kind_, item in typed_items(resource, "output", "task-output-type")
        if kind_ == TaskOutputType.CLOCK_EXCEPTION
        for coding in (item.get("valueCodeableConcept") or {}).get("coding", [])
        if isinstance(coding, dict)
    ]
    days_late: int | None = None
    if kind == Measure.OUTSTANDING_OVERDUE:
        days_late = (as_at - row.due_date).days
    elif kind != CLOSED_WITHOUT_ADVICE_EXCEPTION and row.completed_on is not None:
        days_late = (row.completed_on - row.due_date).days
    return ReportException(
        task_id=str(row.id),
        owner=owner,
        requester=requester,
        case_reference=references[0] if references else "",
        received=row.received_on,
        due=row.due_date,
        exception=kind,
        reason=row.status_reason or "",
        days_late=days_late,
        clock_exception=";".join(dict.fromkeys(e for e in exceptions if e)),
    )


def compute(
    session: Session, caller: Caller | None, wanted: ReportQuery, now: datetime
) -> SixWeekReport:
    """The month's figures for `caller` (None: the operator, every request). Refuses a
    month that has not begun."""
    today = london_date(now)
    month = wanted.month
    if month.first > today:
        raise ReportPeriodError(f"{month} has not begun: there is nothing to report yet")
    as_at = min(month.last, today)
    organisation = session.get(Organisation, caller.organisation_id) if caller else None
    clauses = _cohort_clauses(month, as_at)
    cohorts: list[tuple[ColumnElement[bool], Iterable[SixWeekMeasure]]] = [
        (clauses[Measure.REQUESTS_RECEIVED], RECEIPT_MEASURES),
        (clauses[Measure.DUE_IN_PERIOD], DUE_MEASURES),
        (clauses[Measure.OUTSTANDING_OVERDUE], AS_AT_MEASURES),
    ]
    figures: dict[SixWeekMeasure, Figure] = {}
    for cohort, measures in cohorts:
        pairs = _cohort_counts(session, caller, wanted, cohort, {m: clauses[m] for m in measures})
        figures.update({m: _figure(m, pairs) for m in measures})
    within, due = figures[Measure.COMPLETED_WITHIN_6_WEEKS], figures[Measure.DUE_IN_PERIOD]
    percent = Score(
        percentage(within.total, due.total),
        _scores(within.by_owner, due.by_owner),
        _scores(within.by_requester, due.by_requester),
    )
    return SixWeekReport(
        month=month,
        as_at=as_at,
        generated=now,
        reporter=caller.organisation if caller else None,
        reporter_name=organisation.name if organisation else None,
        figures={m: figures[m] for m in SixWeekMeasure if m in figures},
        percent=percent,
        exceptions=_exception_rows(session, caller, wanted, clauses, as_at),
    )


def six_week_report(
    session: Session, caller: Caller, wanted: ReportQuery, query: str | None, now: datetime
) -> SixWeekReport:
    """The report an organisation asks for through the API or the console: the requests it
    may report on, audited as an operation with the month and how many exceptions it listed."""
    report = compute(session, caller, wanted, now)
    record(
        session,
        caller.audit_entry(
            AuditKind.OPERATION,
            query=query,
            details=_details(report, wanted),
        ),
        at=now,
    )
    return report


def operator_six_week_report(
    session: Session, actor: Actor, wanted: ReportQuery, now: datetime
) -> SixWeekReport:
    """The report the operator runs (`exchange report six-weeks`): every request, audited
    as an operator report."""
    report = compute(session, None, wanted, now)
    record(
        session,
        AuditEntry(
            kind=AuditKind.REPORT,
            action=Action.READ,
            outcome=Outcome.SUCCESS,
            actor=actor,
            details=_details(report, wanted),
        ),
        at=now,
    )
    return report


def _details(report: SixWeekReport, wanted: ReportQuery) -> dict[str, str]:
    details = {
        "report": "six-weeks",
        "period": str(report.month),
        "exceptions": str(len(report.exceptions)),
    }
    if wanted.owner:
        details["owner"] = wanted.owner
    if wanted.requester:
        details["requester"] = wanted.requester
    return details
