"""`Patient`: conditional create by NHS number, read, search by identifier, update."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import Response, g, request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from exchange import codes
from exchange.agreements.queries import party_to_an_agreement
from exchange.api.auditing import audit_request
from exchange.api.context import services
from exchange.api.fhir import bp
from exchange.api.fhir.responses import fhir_response, searchset
from exchange.api.fhir.rest import (
    check_if_match,
    history_bundle,
    read_response,
    request_body,
    resource_uuid,
    version_number,
    write_response,
)
from exchange.api.fhir.search import nhs_number_value, page_urls, parse_search, split_token
from exchange.api.guards import requires_scope
from exchange.audit.events import AuditKind, Entity
from exchange.clock import london_date
from exchange.codes import NHS_NUMBER_SYSTEM
from exchange.errors import Issue
from exchange.fhir.capability import ResourceCapability, SearchParam
from exchange.fhir.outcome import FhirError, forbidden, invalid, not_found
from exchange.fhir.validation import validate_resource
from exchange.patients import service
from exchange.patients.models import Patient, PatientAccess
from exchange.patients.profile import patient_profile_issues
from exchange.versions import all_versions, read_version

PATIENT = ResourceCapability(
    type="Patient",
    interactions=("create", "read", "vread", "update", "search-type", "history-instance"),
    search_params=(SearchParam("identifier", "token", documentation="required: https://fhir.nhs.uk/Id/nhs-number|NNNNNNNNNN"),),
    conditional_create=True,
)


def _entity(patient: Patient) -> Entity:
    return Entity(f"Patient/{patient.id}", "patient")


def _validated(data: Any) -> dict[str, Any]:
    resource = validate_resource(data, "Patient", patient_profile_issues)
    if date.fromisoformat(resource["birthDate"]) > london_date(services().clock.now()):
        raise invalid([Issue("error", "value", "Patient.birthDate is in the future", ("Patient.birthDate",))])
    return resource


def _if_none_exist() -> str | None:
    """The NHS number of a conditional create (`If-None-Exist: identifier=<system>|<n>`)."""
    header = request.headers.get("If-None-Exist")
    if header is None:
        return None
    name, _, value = header.partition("=")
    if name.strip() != "identifier" or split_token(value)[0] != NHS_NUMBER_SYSTEM:
        raise FhirError(400, "invalid", f"If-None-Exist must be identifier={NHS_NUMBER_SYSTEM}|<NHS number>")
    return nhs_number_value(value, "If-None-Exist")


@bp.post("/Patient")
@requires_scope("Patient", "c")
def patient_create() -> Response:
    """Register a child or young person (conditional create by NHS number)."""
    resource = _validated(request_body())
    conditional = _if_none_exist()
    nhs_number = service.nhs_number_of(resource)
    if conditional is not None and conditional != nhs_number:
        raise invalid([Issue("error", "invariant", "If-None-Exist names another NHS number than the resource",
                             ("Patient.identifier",))])
    now = services().clock.now()
    for attempt in (1, 2):  # a concurrent first registration of the NHS number: retry once
        try:
            with services().database.transaction() as session:
                if not party_to_an_agreement(session, g.caller.organisation_id, london_date(now)):
                    raise forbidden(codes.AccessDenialReason.NO_AGREEMENT,
                                    "registering a patient needs a data-sharing agreement in force")
                existing = service.find_by_nhs_number(session, nhs_number or "")
                if (
                    conditional is None
                    and existing is not None
                    and service.can_see(session, existing.id, g.caller.organisation_id)
                ):
                    raise FhirError(409, "duplicate", "a Patient with this NHS number is already registered; "
                                    "use If-None-Exist for a conditional create")
                try:
                    registration = service.register(session, resource, g.caller.organisation_id, now)
                except service.BirthDateConflict:
                    raise FhirError(409, "conflict", "the NHS number is registered with a different birth date") from None
                stored = registration.view.resource
                audit_request(session, entities=(_entity(registration.patient),), patient_id=registration.patient.id,
                              kind=AuditKind.CREATE)
            break
        except IntegrityError:
            if attempt == 2:
                raise
    return write_response(stored, 201 if registration.first_for_organisation else 200)


@bp.get("/Patient/<resource_id>")
@requires_scope("Patient", "r")
def patient_read(resource_id: str) -> Response:
    """Read a patient the caller's organisation may see (others: 404)."""
    patient_id = resource_uuid("Patient", resource_id)
    with services().database.transaction() as session:
        patient = service.visible_patient(session, patient_id, g.caller.organisation_id)
        if patient is None:
            raise not_found("Patient", resource_id)
        audit_request(session, entities=(_entity(patient),), patient_id=patient.id)
        resource = service.view_of(session, patient, g.caller.organisation_id).resource
    return read_response(resource)


@bp.get("/Patient/<resource_id>/_history/<version>")
@requires_scope("Patient", "r")
def patient_vread(resource_id: str, version: str) -> Response:
    """Read one version of a patient."""
    patient_id = resource_uuid("Patient", resource_id)
    with services().database.transaction() as session:
        patient = service.visible_patient(session, patient_id, g.caller.organisation_id)
        if patient is None:
            raise not_found("Patient", resource_id)
        view = service.view_of(session, patient, g.caller.organisation_id)
        stored = read_version(session, "Patient", view.id, version_number(version))
        if stored is None:
            raise not_found("Patient", f"{resource_id}/_history/{version}")
        audit_request(session, entities=(_entity(patient),), patient_id=patient.id)
    return fhir_response(service.view_version(view, stored))


@bp.get("/Patient/<resource_id>/_history")
@requires_scope("Patient", "r")
def patient_history(resource_id: str) -> Response:
    """Every version of a patient."""
    patient_id = resource_uuid("Patient", resource_id)
    with services().database.transaction() as session:
        patient = service.visible_patient(session, patient_id, g.caller.organisation_id)
        if patient is None:
            raise not_found("Patient", resource_id)
        view = service.view_of(session, patient, g.caller.organisation_id)
        bundle = history_bundle([service.view_version(view, v) for v in all_versions(session, "Patient", view.id)])
        audit_request(session, entities=(_entity(patient),), patient_id=patient.id)
    return fhir_response(bundle)


@bp.get("/Patient")
@requires_scope("Patient", "s")
def patient_search() -> Response:
    """Find a patient by NHS number (`identifier` is required); invisible ones are absent."""
    search = parse_search({"identifier"})
    identifier = search.first("identifier")
    if identifier is None:
        raise FhirError(400, "required", "searching Patient needs identifier=https://fhir.nhs.uk/Id/nhs-number|<n>")
    code = nhs_number_value(identifier, "identifier")
    with services().database.transaction() as session:
        patient = session.scalars(
            select(Patient)
            .join(PatientAccess, PatientAccess.patient_id == Patient.id)
            .where(Patient.nhs_number == code, PatientAccess.organisation_id == g.caller.organisation_id)
            .limit(1)
        ).first()
        found = [service.view_of(session, patient, g.caller.organisation_id).resource] if patient is not None else []
        self_url, _ = page_urls(search, "/fhir/Patient", None)
        bundle = searchset(found, len(found), self_url)
        audit_request(session, entities=(_entity(patient),) if patient else (), patient_id=patient.id if patient else None)
    return fhir_response(bundle)


@bp.put("/Patient/<resource_id>")
@requires_scope("Patient", "u")
def patient_update(resource_id: str) -> Response:
    """Update a patient (the first registrant only); the NHS number cannot change, and a
    birth-date correction is audited with both dates and flagged for IG review."""
    patient_id = resource_uuid("Patient", resource_id)
    data = request_body()
    with services().database.transaction() as session:
        patient = service.visible_patient(session, patient_id, g.caller.organisation_id)
        if patient is None:
            raise not_found("Patient", resource_id)
        check_if_match(service.view_of(session, patient, g.caller.organisation_id).version)
        resource = _validated(data)
        if resource.get("id") not in (None, resource_id):
            raise invalid([Issue("error", "invariant", "the resource id does not match the URL", ("Patient.id",))])
        if service.nhs_number_of(resource) != patient.nhs_number:
            raise invalid([Issue("error", "business-rule", "the NHS number of a Patient cannot change", ("Patient.identifier",))])
        try:
            updated = service.update(session, patient, g.caller.organisation_id, resource, services().clock.now())
        except service.NotFirstRegistrant as refusal:
            raise FhirError(403, "forbidden", str(refusal)) from None
        correction = updated.correction
        audit_request(
            session, entities=(_entity(patient),), patient_id=patient.id,
            details={"birth-date-before": correction.old.isoformat(), "birth-date-after": correction.new.isoformat()}
            if correction else None,
            review_reason=codes.ReviewReason.BIRTH_DATE_CORRECTION if correction else None,
        )
        stored = updated.view.resource
    return write_response(stored, 200)
