"""The DCO's requests: the ICB's advice requests and quality-assurance Tasks (as
requester, owner or previous owner), soonest due first, through the Task search use case
(audited as a search). The quality-assurance queue is the open `dco-quality-assurance`
Tasks."""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import urlencode

from flask import request
from werkzeug import Response

from exchange.advice_requests.clock_rules import OPEN_STATUSES
from exchange.advice_requests.queries import TaskFilters
from exchange.advice_requests.service import search_tasks
from exchange.api.console import forms, security
from exchange.api.console.blueprint import bp
from exchange.api.console.pages import render
from exchange.api.context import services
from exchange.codes import TaskType

TITLE = "Requests"
#: What the `show` choice lists.
SHOWN: Final = {"open": sorted(OPEN_STATUSES), "all": None}


def _row(task: dict[str, Any]) -> dict[str, Any]:
    """What the table shows of a Task (its case reference, never the child's details)."""
    identifiers = task.get("identifier") or [{}]
    coding = ((task.get("code") or {}).get("coding") or [{}])[0]
    business = ((task.get("businessStatus") or {}).get("coding") or [{}])[0]
    return {
        "reference": identifiers[0].get("value") or f"Task/{task['id']}",
        "type": coding.get("code", ""),
        "owner": ((task.get("owner") or {}).get("identifier") or {}).get("value", ""),
        "requester": ((task.get("requester") or {}).get("identifier") or {}).get("value", ""),
        "received": str(task.get("authoredOn", ""))[:10],
        "due": ((task.get("restriction") or {}).get("period") or {}).get("end", ""),
        "status": task.get("status", ""),
        "business": business.get("code", ""),
    }


@bp.get("/requests")
@security.requires("dco")
def requests_list() -> Response:
    """The requests the ICB takes part in, soonest due first: open ones unless asked,
    of one type when asked (the quality-assurance queue)."""
    values = {
        "type": request.args.get("type", "").strip()[:64],
        "show": request.args.get("show", "open").strip()[:8] or "open",
    }
    errors = {}
    if values["type"] and values["type"] not in {t.value for t in TaskType}:
        errors["type"] = "Choose a type from the list"
    if values["show"] not in SHOWN:
        errors["show"] = "Choose open or all"
    context: dict[str, Any] = {"values": values, "types": [t.value for t in TaskType]}
    if errors:
        return render("console/requests.jinja", TITLE, errors=errors, **context)
    filters = TaskFilters(
        statuses=SHOWN[values["show"]], codes=[values["type"]] if values["type"] else None
    )
    paging = forms.paging(request.args, descending=False)
    query = urlencode({k: v for k, v in values.items() if v})
    ctx = services()
    with ctx.database.transaction() as session:
        found = search_tasks(
            session, security.caller(), filters, "due", paging, query, ctx.clock.now()
        )
    next_link = None
    if found.next is not None:
        more = {**values, "after": found.next.at, "after_id": found.next.id}
        next_link = "?" + urlencode(more)
    return render(
        "console/requests.jinja",
        TITLE,
        tasks=[_row(task) for task in found.resources],
        total=found.total,
        next_link=next_link,
        first_page_link=f"?{query}" if paging.after else None,
        **context,
    )
