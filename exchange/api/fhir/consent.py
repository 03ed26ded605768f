"""`Consent`: create, read, vread, update (status changes: withdrawal), search, history,
and `$evaluate`, the consent decision for a recipient and purpose (`consent.md`). HTTP only:
each view parses, calls one use case of `consent.service`, answers."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Final

from flask import Response, request

from exchange import codes
from exchange.api.auditing import request_caller, search_query
from exchange.api.context import services
from exchange.api.fhir import bp
from exchange.api.fhir.responses import fhir_response, searchset
from exchange.api.fhir.rest import (
    history_bundle,
    read_response,
    request_body,
    resource_uuid,
    version_number,
    write_response,
)
from exchange.api.fhir.search import (
    SearchRequest,
    codes_of,
    groups,
    nhs_number_value,
    nhs_numbers,
    ods_value,
    parse_date,
    parse_search,
    patient_ids,
    split_token,
)
from exchange.api.guards import requires_scope
from exchange.consent import service
from exchange.consent.profile import STATUSES as CONSENT_STATUSES
from exchange.consent.queries import ConsentFilters, category_of, tag_of
from exchange.fhir.capability import ResourceCapability, SearchParam
from exchange.fhir.outcome import FhirError

SEARCH_PARAMS: Final = (
    "patient",
    "patient.identifier",
    "status",
    "category",
    "date",
    "_tag",
    "_sort",
)
EVALUATE: Final = f"{codes.CANONICAL_BASE}/OperationDefinition/Consent-evaluate"
CONSENT = ResourceCapability(
    type="Consent",
    interactions=("create", "read", "vread", "update", "search-type", "history-instance"),
    search_params=tuple(
        SearchParam(name, kind)
        for name, kind in (
            ("patient", "reference"),
            ("patient.identifier", "token"),
            ("status", "token"),
            ("category", "token"),
            ("date", "date"),
            ("_tag", "token"),
        )
    ),
    profile=codes.PROFILE_CONSENT,
    operations=(("evaluate", EVALUATE),),
)


@bp.post("/Consent")
@requires_scope("Consent", "c")
def consent_create() -> Response:
    """Record a consent decision for a patient the caller can see."""
    data = request_body()
    ctx = services()
    with ctx.database.transaction() as session:
        recorded = service.record_consent(session, request_caller(), data, ctx.clock.now())
    return write_response(recorded.resource, 201, [recorded.warning] if recorded.warning else None)


@bp.get("/Consent/<resource_id>")
@requires_scope("Consent", "r")
def consent_read(resource_id: str) -> Response:
    """Read a Consent the caller may read (its recorder and the patient's Task parties)."""
    ctx = services()
    with ctx.database.transaction() as session:
        resource = service.read_consent(
            session, request_caller(), resource_uuid("Consent", resource_id), ctx.clock.now()
        )
    return read_response(resource)


@bp.get("/Consent/<resource_id>/_history/<version>")
@requires_scope("Consent", "r")
def consent_vread(resource_id: str, version: str) -> Response:
    """Read one version of a Consent."""
    ctx = services()
    with ctx.database.transaction() as session:
        resource = service.read_consent_version(
            session,
            request_caller(),
            resource_uuid("Consent", resource_id),
            version_number(version),
            ctx.clock.now(),
        )
    return fhir_response(resource)


@bp.get("/Consent/<resource_id>/_history")
@requires_scope("Consent", "r")
def consent_history(resource_id: str) -> Response:
    """Every version of a Consent, newest first."""
    ctx = services()
    with ctx.database.transaction() as session:
        versions = service.consent_history(
            session, request_caller(), resource_uuid("Consent", resource_id), ctx.clock.now()
        )
    return fhir_response(history_bundle(versions))


@bp.put("/Consent/<resource_id>")
@requires_scope("Consent", "u")
def consent_update(resource_id: str) -> Response:
    """Change a Consent's status (withdrawal: `inactive`), by the recording organisation."""
    data = request_body()
    consent_id = resource_uuid("Consent", resource_id)
    ctx = services()
    with ctx.database.transaction() as session:
        recorded = service.change_consent_status(
            session,
            request_caller(),
            consent_id,
            data,
            request.headers.get("If-Match"),
            ctx.clock.now(),
        )
    return write_response(recorded.resource, 200, [recorded.warning] if recorded.warning else None)


def _filters(search: SearchRequest) -> ConsentFilters:
    """The search parameters as ConsentFilters: repetitions of a parameter must all be
    met (AND), each by one of its comma-separated values (OR)."""
    params = search.params
    return ConsentFilters(
        patient_ids=patient_ids(search, "patient"),
        nhs_numbers=nhs_numbers(search),
        statuses=codes_of(search, "status", CONSENT_STATUSES),
        dates=[parse_date(value, "date") for value in params.get("date", [])],
        categories=[
            [category_of(*split_token(v)) for v in group] for group in groups(search, "category")
        ],
        tags=[[tag_of(*split_token(v)) for v in group] for group in groups(search, "_tag")],
    )


@bp.get("/Consent")
@requires_scope("Consent", "s")
def consent_search() -> Response:
    """Search the consents the caller may read, newest decision first."""
    search = parse_search(SEARCH_PARAMS)
    sort = search.params.pop("_sort", ["-date"])[0]
    if sort not in ("date", "-date"):
        raise FhirError(400, "not-supported", "_sort must be date or -date")
    filters = _filters(search)
    paging = search.paging(descending=sort == "-date")
    ctx = services()
    with ctx.database.transaction() as session:
        found = service.search_consents(
            session, request_caller(), filters, paging, search_query(), ctx.clock.now()
        )
    self_url, next_url = search.links("/fhir/Consent", found.next, "date", paging.descending)
    return fhir_response(
        searchset(found.resources, found.total, self_url, next_url, search.ignored_outcome())
    )


def _evaluation_instant(value: str | None, now: datetime) -> datetime:
    """`at`: a date (the end of that Europe/London day) or a dateTime; default now."""
    if value is None:
        return now
    bound = parse_date(value, "at")
    if len(value) == 10:
        # The end of that London day: the start of the next one, less a microsecond.
        return bound.high - timedelta(microseconds=1)
    return bound.low


@bp.get("/Consent/$evaluate")
@requires_scope("Consent", "r")
def consent_evaluate() -> Response:
    """The consent decision for disclosing a patient's information to `recipient` for `purpose`."""
    search = parse_search({"patient.identifier", "recipient", "purpose", "at"})
    identifier, recipient, purpose = (
        search.first(n) for n in ("patient.identifier", "recipient", "purpose")
    )
    if not identifier or not recipient or not purpose:
        raise FhirError(
            400, "required", "$evaluate needs patient.identifier, recipient and purpose"
        )
    if purpose not in {p.value for p in codes.Purpose}:
        raise FhirError(
            400,
            "code-invalid",
            f"purpose {purpose!r} is not a code of {codes.code_system_url('purpose')}",
        )
    nhs_number = nhs_number_value(identifier, "patient.identifier")
    recipient = ods_value(recipient, "recipient")
    ctx = services()
    now = ctx.clock.now()
    at = _evaluation_instant(search.first("at"), now)
    with ctx.database.transaction() as session:
        decision = service.evaluate_consent(
            session, request_caller(), nhs_number, recipient, purpose, at, now
        )
    parameters: list[dict[str, Any]] = [
        {"name": "decision", "valueCode": "permit" if decision.permit else "deny"}
    ]
    if decision.reason is not None:
        parameters.append({"name": "reason", "valueCode": str(decision.reason)})
    if decision.deciding is not None:
        parameters.append(
            {"name": "consent", "valueReference": {"reference": f"Consent/{decision.deciding.id}"}}
        )
    return fhir_response({"resourceType": "Parameters", "parameter": parameters})
