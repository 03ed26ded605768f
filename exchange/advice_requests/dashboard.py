"""The DCO's 6-week dashboard: the monthly six-week report for a run of months ending in
the one asked for (the trend the chart draws), that month's figures by provider and by LA
with its exceptions, and today's overdue list — all over the requests the caller may report
on (`six_weeks.in_report_scope`: as requester or owner, and for an ICB every request owned
by an organisation it commissions). One page view, audited once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy.orm import Session

from exchange.advice_requests.reports import OverdueRequest, overdue
from exchange.advice_requests.six_weeks import (
    Month,
    ReportQuery,
    SixWeekReport,
    compute,
    in_report_scope,
)
from exchange.audit.events import AuditKind
from exchange.audit.service import record
from exchange.caller import Caller
from exchange.clock import london_date

#: Months the trend shows, the month asked for the last.
TREND_MONTHS: Final = 6


@dataclass(frozen=True, slots=True)
class Dashboard:
    """The month's report, the reports of the months before it, and the overdue list."""

    report: SixWeekReport
    #: Oldest first, ending with `report`.
    trend: list[SixWeekReport]
    overdue: list[OverdueRequest]


def six_week_dashboard(
    session: Session, caller: Caller, wanted: ReportQuery, query: str | None, now: datetime
) -> Dashboard:
    """The dashboard for `wanted` (a month not yet begun is ReportPeriodError, as for the
    report itself); audited as a page view with the period and how many rows it listed."""
    months = [wanted.month]
    while len(months) < TREND_MONTHS:
        months.insert(0, months[0].previous())
    trend = [
        compute(session, caller, ReportQuery(month, wanted.owner, wanted.requester), now)
        for month in months
    ]
    late = overdue(
        session, london_date(now), wanted.owner, wanted.requester, in_report_scope(caller)
    )
    report = trend[-1]
    details = {
        "page": "six-week-dashboard",
        "period": str(wanted.month),
        "exceptions": str(len(report.exceptions)),
        "overdue": str(len(late)),
    }
    if wanted.owner:
        details["owner"] = wanted.owner
    if wanted.requester:
        details["requester"] = wanted.requester
    record(session, caller.audit_entry(AuditKind.PAGE_VIEW, query=query, details=details), at=now)
    return Dashboard(report, trend, late)


def current_month(now: datetime) -> Month:
    """The London month `now` falls in."""
    return Month.of(london_date(now))
