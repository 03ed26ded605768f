"""`GET /fhir/Task/$six-week-report`: the monthly six-week figures as a `MeasureReport`
(`advice-requests.md`, Reports). HTTP only: parse, call `six_weeks.six_week_report`, answer."""

from __future__ import annotations

from typing import Final

from flask import Response

from exchange.advice_requests.measure_report import measure_report
from exchange.advice_requests.six_weeks import Month, ReportQuery, six_week_report
from exchange.api.auditing import request_caller, search_query
from exchange.api.context import services
from exchange.api.fhir import bp
from exchange.api.fhir.responses import fhir_response
from exchange.api.fhir.search import SearchRequest, ods_value, parse_search
from exchange.api.guards import requires_scope
from exchange.fhir.outcome import FhirError

PARAMETERS: Final = ("period", "owner", "requester")


def _one(search: SearchRequest, name: str) -> str | None:
    """A parameter given at most once (the OperationDefinition's max 1), else 400."""
    values = search.params.get(name, [])
    if len(values) > 1:
        raise FhirError(400, "invalid", f"{name} may be given once", expression=(name,))
    return values[0] if values else None


@bp.get("/Task/$six-week-report")
@requires_scope("Task", "r")
def task_six_week_report() -> Response:
    """The month's six-week figures over the requests the caller may report on."""
    search = parse_search(PARAMETERS)
    period = _one(search, "period")
    if not period:
        raise FhirError(
            400, "required", "$six-week-report needs period=YYYY-MM", expression=("period",)
        )
    owner, requester = _one(search, "owner"), _one(search, "requester")
    wanted = ReportQuery(
        Month.parse(period),
        ods_value(owner, "owner") if owner else None,
        ods_value(requester, "requester") if requester else None,
    )
    ctx = services()
    with ctx.database.transaction() as session:
        report = six_week_report(session, request_caller(), wanted, search_query(), ctx.clock.now())
    return fhir_response(measure_report(report))
