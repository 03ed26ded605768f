"""The child view: one NHS number's consents (with their part in the consent decision),
requests, documents and who accessed each, for the IG lead's organisation. The NHS number
travels in the query string, never the path: paths reach the operator log."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import request
from werkzeug import Response

from exchange.agreements.ods import is_ods_code
from exchange.api.console import forms, security
from exchange.api.console.blueprint import bp
from exchange.api.console.pages import render
from exchange.api.context import services
from exchange.clock import london_date
from exchange.oversight.child import child_record
from exchange.patients.nhs_number import is_valid_nhs_number

TITLE = "Child view"


@bp.get("/child")
@security.requires("ig-lead")
def child() -> Response:
    """Ask for an NHS number, or show that child."""
    caller = security.caller()
    ctx = services()
    now = ctx.clock.now()
    values = {
        "nhs_number": request.args.get("nhs_number", "").strip()[:32],
        "recipient": request.args.get("recipient", "").strip().upper()[:16] or caller.organisation,
        "purpose": request.args.get("purpose", "").strip() or "ehcna-advice",
        "at": request.args.get("at", "").strip()[:10] or london_date(now).isoformat(),
    }
    context: dict[str, Any] = {"values": values, "purposes": forms.PURPOSES}
    if not values["nhs_number"]:
        return render("console/child.jinja", TITLE, **context)
    errors = {}
    number = forms.nhs_number_value(values["nhs_number"])
    if not is_valid_nhs_number(number):
        errors["nhs_number"] = "Enter a valid NHS number: 10 digits, like 943 476 5919"
    if not is_ods_code(values["recipient"]):
        errors["recipient"] = "Enter the recipient's ODS code, like PRV01"
    if values["purpose"] not in forms.PURPOSES:
        errors["purpose"] = "Choose a purpose from the list"
    day = forms.london_day(values["at"])
    if day is None:
        errors["at"] = "Enter a real date, like 2026-11-23"
    if errors or day is None:
        return render("console/child.jinja", TITLE, errors=errors, **context)
    # A date means the end of that London day, as `$evaluate` takes it (never the future).
    at = min(forms.day_start(day + timedelta(days=1)) - timedelta(microseconds=1), now)
    with ctx.database.transaction() as session:
        record = child_record(
            session, caller, number, values["recipient"], values["purpose"], at, now
        )
    return render("console/child.jinja", TITLE, record=record, **context)
