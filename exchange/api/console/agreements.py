"""Data-sharing agreements: every DSA with its parties, purposes, period and status (the
registry's Contract search); administrators register and terminate them (the registry's
use cases, as `exchange agreement add|terminate`)."""

from __future__ import annotations

from typing import Any

from flask import redirect, request, url_for
from werkzeug import Response
from werkzeug.exceptions import NotFound as HttpNotFound

from exchange.agreements.service import search_agreements
from exchange.api.console import forms, security
from exchange.api.console.blueprint import bp
from exchange.api.console.pages import render
from exchange.api.context import services
from exchange.registry.service import RegistryError, register_entry, set_agreement_status
from exchange.registry.specs import BootstrapError
from exchange.search import Paging

TITLE = "Agreements"
_FIELDS = ("agreement_id", "title", "parties", "start", "end")


def _row(contract: dict[str, Any]) -> dict[str, Any]:
    """What the table shows of a Contract."""
    identifiers = contract.get("identifier") or [{}]
    return {
        "agreement_id": identifiers[0].get("value", ""),
        "title": contract.get("title", ""),
        "status": contract.get("status", ""),
        "start": (contract.get("applies") or {}).get("start", ""),
        "end": (contract.get("applies") or {}).get("end", ""),
        "parties": [
            s.get("party", {}).get("identifier", {}).get("value", "")
            for s in contract.get("signer") or []
        ],
        "purposes": [
            coding.get("code", "")
            for term in contract.get("term") or []
            for action in term.get("action") or []
            for coding in (action.get("intent") or {}).get("coding") or []
        ],
    }


def _page(
    errors: dict[str, str] | None = None, values: dict[str, Any] | None = None, status: int = 200
) -> Response:
    ctx = services()
    caller = security.caller()
    with ctx.database.transaction() as session:
        found = search_agreements(
            session, caller, None, None, Paging(100, None, False), None, ctx.clock.now()
        )
    return render(
        "console/agreements.jinja",
        TITLE,
        status=status,
        errors=errors,
        agreements=[_row(contract) for contract in found.resources],
        more=found.next is not None,
        can_change=security.has_role("admin"),
        values=values or {"purposes": []},
        purposes=forms.PURPOSES,
        changed=request.args.get("changed", ""),
    )


@bp.get("/agreements")
@security.requires("ig-lead", "admin")
def agreements() -> Response:
    """Every agreement, by id."""
    return _page()


@bp.post("/agreements")
@security.requires("admin")
def agreement_add() -> Response:
    """Register (or update) an agreement, validated as a bootstrap file's entry."""
    values: dict[str, Any] = {name: request.form.get(name, "").strip()[:256] for name in _FIELDS}
    values["purposes"] = [p for p in request.form.getlist("purposes") if p in forms.PURPOSES]
    entry: dict[str, Any] = {
        "id": values["agreement_id"],
        "title": values["title"],
        "parties": [ods.upper() for ods in values["parties"].replace(",", " ").split()],
        "purposes": values["purposes"],
        "start": values["start"],
    }
    if values["end"]:
        entry["end"] = values["end"]
    caller = security.caller()
    ctx = services()
    try:
        with ctx.database.transaction() as session:
            changes = register_entry(session, "agreements", entry, ctx.clock, caller.actor)
    except BootstrapError as problem:
        errors = {f"agreement_id|{n}": text for n, text in enumerate(problem.problems)}
        return _page(errors, values, status=422)
    changed = "; ".join(str(change) for change in changes) or "no changes"
    return redirect(url_for("console.agreements", changed=changed))


@bp.post("/agreements/<agreement_id>/terminate")
@security.requires("admin")
def agreement_terminate(agreement_id: str) -> Response:
    """End an agreement: it allows no more sharing."""
    caller = security.caller()
    ctx = services()
    try:
        with ctx.database.transaction() as session:
            change = set_agreement_status(
                session, agreement_id[:128], "terminated", ctx.clock, caller.actor
            )
    except RegistryError:
        raise HttpNotFound() from None
    changed = str(change) if change else f"agreement {agreement_id}: already terminated"
    return redirect(url_for("console.agreements", changed=changed))
