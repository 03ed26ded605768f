"""The access log: the IG lead's organisation's audit events (as acting organisation or
custodian), filtered, paged by keyset, and downloadable as CSV through the export use
case (itself audited)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

from flask import request, stream_with_context
from werkzeug import Response

from exchange.api.console import forms, security
from exchange.api.console.blueprint import bp
from exchange.api.console.pages import render
from exchange.api.context import services
from exchange.codes import Purpose
from exchange.trail.export import export_lines, record_export, scope_for
from exchange.trail.service import access_log as access_log_use_case


def _query_string(values: dict[str, str], **extra: str) -> str:
    return urlencode({k: v for k, v in {**values, **extra}.items() if v})


@bp.get("/access-log")
@security.requires("ig-lead")
def access_log() -> Response:
    """The filtered access log, newest first."""
    query = forms.log_query(request.args)
    context: dict[str, Any] = {
        "values": query.values,
        "purposes": [p.value for p in Purpose],
        "outcomes": list(forms.OUTCOMES),
    }
    if query.errors:
        return render("console/access_log.jinja", "Access log", errors=query.errors, **context)
    ctx = services()
    with ctx.database.transaction() as session:
        page = access_log_use_case(
            session,
            security.caller(),
            query.filters,
            query.paging,
            _query_string(query.values) or None,
            ctx.clock.now(),
        )
    next_link = None
    if page.next is not None:
        next_link = "?" + _query_string(query.values, after=page.next.at, after_id=page.next.id)
    return render(
        "console/access_log.jinja",
        "Access log",
        page=page,
        next_link=next_link,
        first_page_link="?" + _query_string(query.values) if query.paging.after else None,
        export_link="access-log.csv?" + _query_string(query.values),
        **context,
    )


@bp.get("/access-log.csv")
@security.requires("ig-lead")
def access_log_csv() -> Response:
    """The filtered access log as CSV (every page): audited as an export before a line
    is sent, then streamed."""
    query = forms.log_query(request.args)
    if query.errors:
        return render(
            "console/access_log.jinja",
            "Access log",
            errors=query.errors,
            values=query.values,
            purposes=[p.value for p in Purpose],
            outcomes=list(forms.OUTCOMES),
        )
    ctx = services()
    caller = security.caller()
    now = ctx.clock.now()
    scope = scope_for(caller, query.recorded(now), query.filters)
    with ctx.database.transaction() as session:
        record_export(session, caller.actor, scope, "csv", now, caller.request_id)

    def lines() -> Iterator[str]:
        with ctx.database.transaction() as session:
            yield from export_lines(session, scope, "csv")

    response = Response(stream_with_context(lines()), mimetype="text/csv")
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    response.headers["Content-Disposition"] = (
        f'attachment; filename="access-log-{caller.organisation}-{stamp}.csv"'
    )
    return response
