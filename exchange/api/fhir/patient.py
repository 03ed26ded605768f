"""`Patient`: conditional create by NHS number, read, vread, history, search by identifier,
update. HTTP only: each view parses, calls one use case of `patients.service`, answers."""

from __future__ import annotations

from flask import Response, request

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
from exchange.api.fhir.search import nhs_number_value, page_urls, parse_search, split_token
from exchange.api.guards import requires_scope
from exchange.codes import NHS_NUMBER_SYSTEM
from exchange.fhir.capability import ResourceCapability, SearchParam
from exchange.fhir.outcome import FhirError
from exchange.patients import service

PATIENT = ResourceCapability(
    type="Patient",
    interactions=("create", "read", "vread", "update", "search-type", "history-instance"),
    search_params=(
        SearchParam(
            "identifier",
            "token",
            documentation="required: https://fhir.nhs.uk/Id/nhs-number|NNNNNNNNNN",
        ),
    ),
    conditional_create=True,
)


def _if_none_exist() -> str | None:
    """The NHS number of a conditional create (`If-None-Exist: identifier=<system>|<n>`)."""
    header = request.headers.get("If-None-Exist")
    if header is None:
        return None
    name, _, value = header.partition("=")
    if name.strip() != "identifier" or split_token(value)[0] != NHS_NUMBER_SYSTEM:
        raise FhirError(
            400, "invalid", f"If-None-Exist must be identifier={NHS_NUMBER_SYSTEM}|<NHS number>"
        )
    return nhs_number_value(value, "If-None-Exist")


@bp.post("/Patient")
@requires_scope("Patient", "c")
def patient_create() -> Response:
    """Register a child or young person (conditional create by NHS number)."""
    data = request_body()
    conditional = _if_none_exist()
    ctx = services()
    registration = service.register_patient_once(
        ctx.database, request_caller(), data, conditional, ctx.clock.now()
    )
    return write_response(
        registration.view.resource, 201 if registration.first_for_organisation else 200
    )


@bp.get("/Patient/<resource_id>")
@requires_scope("Patient", "r")
def patient_read(resource_id: str) -> Response:
    """Read a patient the caller's organisation may see (others: 404)."""
    ctx = services()
    with ctx.database.transaction() as session:
        resource = service.read_patient(
            session, request_caller(), resource_uuid("Patient", resource_id), ctx.clock.now()
        )
    return read_response(resource)


@bp.get("/Patient/<resource_id>/_history/<version>")
@requires_scope("Patient", "r")
def patient_vread(resource_id: str, version: str) -> Response:
    """Read one version of a patient."""
    ctx = services()
    with ctx.database.transaction() as session:
        resource = service.read_patient_version(
            session,
            request_caller(),
            resource_uuid("Patient", resource_id),
            version_number(version),
            ctx.clock.now(),
        )
    return fhir_response(resource)


@bp.get("/Patient/<resource_id>/_history")
@requires_scope("Patient", "r")
def patient_history(resource_id: str) -> Response:
    """Every version of a patient."""
    ctx = services()
    with ctx.database.transaction() as session:
        versions = service.patient_history(
            session, request_caller(), resource_uuid("Patient", resource_id), ctx.clock.now()
        )
    return fhir_response(history_bundle(versions))


@bp.get("/Patient")
@requires_scope("Patient", "s")
def patient_search() -> Response:
    """Find a patient by NHS number (`identifier` is required); invisible ones are absent."""
    search = parse_search({"identifier"})
    identifier = search.first("identifier")
    if identifier is None:
        raise FhirError(
            400,
            "required",
            "searching Patient needs identifier=https://fhir.nhs.uk/Id/nhs-number|<n>",
        )
    nhs_number = nhs_number_value(identifier, "identifier")
    ctx = services()
    with ctx.database.transaction() as session:
        found = service.search_patients(
            session, request_caller(), nhs_number, search_query(), ctx.clock.now()
        )
    self_url, _ = page_urls(search, "/fhir/Patient", None)
    return fhir_response(searchset(found, len(found), self_url))


@bp.put("/Patient/<resource_id>")
@requires_scope("Patient", "u")
def patient_update(resource_id: str) -> Response:
    """Update a patient (the first registrant only)."""
    patient_id = resource_uuid("Patient", resource_id)
    data = request_body()
    ctx = services()
    with ctx.database.transaction() as session:
        stored = service.update_patient(
            session,
            request_caller(),
            patient_id,
            data,
            request.headers.get("If-Match"),
            ctx.clock.now(),
        )
    return write_response(stored, 200)
