"""The 6-week dashboard for DCOs: the monthly six-week report as charts (the trend over
the last months, and providers and LAs in the month) with the same figures in tables, the
month's exceptions, and today's overdue list."""

from __future__ import annotations

from urllib.parse import urlencode

from flask import request
from werkzeug import Response

from exchange.advice_requests.dashboard import current_month, six_week_dashboard
from exchange.advice_requests.six_weeks import Month, ReportPeriodError, ReportQuery
from exchange.agreements.ods import is_ods_code
from exchange.api.console import chart, security
from exchange.api.console.blueprint import bp
from exchange.api.console.pages import render
from exchange.api.context import services
from exchange.codes import SixWeekMeasure

TITLE = "6-week dashboard"


@bp.get("/dashboard")
@security.requires("dco")
def dashboard() -> Response:
    """The dashboard for a month (this month unless asked)."""
    ctx = services()
    now = ctx.clock.now()
    values = {
        "month": request.args.get("month", "").strip()[:7] or str(current_month(now)),
        "owner": request.args.get("owner", "").strip().upper()[:16],
        "requester": request.args.get("requester", "").strip().upper()[:16],
    }
    errors = {}
    month = None
    try:
        month = Month.parse(values["month"])
    except ReportPeriodError:
        errors["month"] = "Enter a month as YYYY-MM, like 2026-11"
    for name in ("owner", "requester"):
        if values[name] and not is_ods_code(values[name]):
            errors[name] = "Enter an ODS code, like PRV01"
    if errors or month is None:
        return render("console/dashboard.jinja", TITLE, errors=errors, values=values)
    wanted = ReportQuery(month, values["owner"] or None, values["requester"] or None)
    query = urlencode({k: v for k, v in values.items() if v})
    with ctx.database.transaction() as session:
        board = six_week_dashboard(session, security.caller(), wanted, query, now)
    report = board.report
    return render(
        "console/dashboard.jinja",
        TITLE,
        values=values,
        board=board,
        trend_chart=chart.monthly(
            [(f"{r.month.first:%b %Y}", r.percent.total) for r in board.trend]
        ),
        owner_chart=chart.by_organisation(report.percent.by_owner),
        requester_chart=chart.by_organisation(report.percent.by_requester),
        percent_text=chart.percent_text,
        measures=list(SixWeekMeasure),
        month_name=f"{month.first:%B %Y}",
    )
