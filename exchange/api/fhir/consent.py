"""`Consent`: create, read, vread, update (status changes: withdrawal), search, history,
and `$evaluate`, the consent decision for a recipient and purpose (`consent.md`)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any, Final

from flask import Response, g
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from exchange import codes
from exchange.agreements.models import Organisation
from exchange.agreements.queries import uncovered_purposes
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
from exchange.api.fhir.search import (
    SearchRequest,
    code_value,
    date_clause,
    keyset_page,
    nhs_number_value,
    ods_value,
    parse_date,
    parse_search,
    reference_id,
    split_token,
    split_values,
)
from exchange.api.guards import requires_scope
from exchange.audit.events import AuditKind, Entity
from exchange.clock import LONDON
from exchange.consent import service
from exchange.consent.models import ConsentRow
from exchange.consent.profile import STATUSES as CONSENT_STATUSES
from exchange.consent.profile import consent_profile_issues
from exchange.errors import Issue
from exchange.fhir.capability import ResourceCapability, SearchParam
from exchange.fhir.outcome import FhirError, forbidden, invalid, not_found
from exchange.fhir.validation import validate_resource
from exchange.patients.models import Patient
from exchange.patients.service import find_by_nhs_number, visible_patient
from exchange.versions import all_versions, read_version

SEARCH_PARAMS: Final = ("patient", "patient.identifier", "status", "category", "date", "_tag", "_sort")
EVALUATE: Final = f"{codes.CANONICAL_BASE}/OperationDefinition/Consent-evaluate"
CONSENT = ResourceCapability(
    type="Consent",
    interactions=("create", "read", "vread", "update", "search-type", "history-instance"),
    search_params=tuple(SearchParam(name, kind) for name, kind in (
        ("patient", "reference"), ("patient.identifier", "token"), ("status", "token"), ("category", "token"),
        ("date", "date"), ("_tag", "token"))),
    profile=codes.PROFILE_CONSENT,
    operations=(("evaluate", EVALUATE),),
)
#: Statuses a Consent can no longer leave: withdrawal, refusal and errors are final.
_FINAL: Final = frozenset({"inactive", "rejected", "entered-in-error"})
#: What a status change may leave out or differ in: the server's own elements (`text` is
#: the client's, so it may not change either).
_UNCHANGEABLE_KEYS: Final = ("meta", "id", "status", "organization")


def _patient_id_of(data: Any) -> uuid.UUID | None:
    """The patient a Consent body names, if it names one well enough to look up."""
    reference = (data.get("patient") or {}).get("reference") if isinstance(data, dict) else None
    if not isinstance(reference, str) or not reference.startswith("Patient/"):
        return None
    try:
        return uuid.UUID(reference.removeprefix("Patient/"))
    except ValueError:
        return None


def _organisation_reference(session: Session) -> dict[str, Any]:
    organisation = session.get(Organisation, g.caller.organisation_id)
    if organisation is None:  # a token's client always belongs to a registered organisation
        raise RuntimeError("the caller's organisation is not registered")
    return {"identifier": {"system": codes.ODS_SYSTEM, "value": organisation.ods}, "display": organisation.name}


def _checked(data: Any) -> dict[str, Any]:
    """R4 + the Consent profile; the default policy is added first (R4 ppc-1)."""
    if isinstance(data, dict) and "policy" not in data and "policyRule" not in data:
        data = {**data, "policy": [{"uri": codes.DEFAULT_CONSENT_POLICY}]}
    resource = validate_resource(data, "Consent", consent_profile_issues)
    moment = datetime.fromisoformat(resource["dateTime"].replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=LONDON)
    if moment > services().clock.now():
        raise invalid([Issue("error", "value", "Consent.dateTime is in the future", ("Consent.dateTime",))])
    return resource


def _entities(patient: Patient, consent_id: uuid.UUID | None) -> tuple[Entity, ...]:
    patient_entity = Entity(f"Patient/{patient.id}", "patient")
    return (Entity(f"Consent/{consent_id}", "consent"), patient_entity) if consent_id else (patient_entity,)


@bp.post("/Consent")
@requires_scope("Consent", "c")
def consent_create() -> Response:
    """Record a consent decision for a patient the caller can see."""
    data = request_body()
    if not isinstance(data, dict) or data.get("resourceType") != "Consent":
        validate_resource(data, "Consent", consent_profile_issues)  # 400 with the reason
    now = services().clock.now()
    with services().database.transaction() as session:
        patient_id = _patient_id_of(data)
        patient = visible_patient(session, patient_id, g.caller.organisation_id) if patient_id else None
        if patient_id is not None and patient is None:
            raise not_found("Patient", str(patient_id))
        resource = _checked(data)
        if patient is None:  # the profile requires a Patient reference, so this is unreachable
            raise not_found("Patient")
        resource["organization"] = [_organisation_reference(session)]
        purposes = [p.get("code") for p in resource["provision"].get("purpose", [])]
        missing = uncovered_purposes(session, g.caller.organisation_id, purposes, now.astimezone(LONDON).date())
        if missing:
            raise forbidden(codes.AccessDenialReason.NO_AGREEMENT,
                            f"no data-sharing agreement in force covers {', '.join(missing)} for this organisation")
        stored = service.record_consent(session, resource, patient, g.caller.organisation_id, now)
        audit_request(session, entities=_entities(patient, stored.row.id), patient_id=patient.id, kind=AuditKind.CREATE,
                      review_reason=codes.ReviewReason.CONTESTED_CONSENT if stored.contested else None)
    return write_response(stored.row.resource, 201, [stored.warning] if stored.warning else None)


def _visible_consent(session: Session, resource_id: str) -> tuple[ConsentRow, Patient]:
    consent_id = resource_uuid("Consent", resource_id)
    row = service.visible_consent(session, consent_id, g.caller.organisation_id)
    patient = session.get(Patient, row.patient_id) if row is not None else None
    if row is None or patient is None:
        raise not_found("Consent", resource_id)
    return row, patient


@bp.get("/Consent/<resource_id>")
@requires_scope("Consent", "r")
def consent_read(resource_id: str) -> Response:
    """Read a Consent of a patient the caller can see."""
    with services().database.transaction() as session:
        row, patient = _visible_consent(session, resource_id)
        audit_request(session, entities=_entities(patient, row.id), patient_id=patient.id)
        resource = row.resource
    return read_response(resource)


@bp.get("/Consent/<resource_id>/_history/<version>")
@requires_scope("Consent", "r")
def consent_vread(resource_id: str, version: str) -> Response:
    """Read one version of a Consent."""
    with services().database.transaction() as session:
        row, patient = _visible_consent(session, resource_id)
        stored = read_version(session, "Consent", row.id, version_number(version))
        if stored is None:
            raise not_found("Consent", f"{resource_id}/_history/{version}")
        audit_request(session, entities=_entities(patient, row.id), patient_id=patient.id)
    return fhir_response(stored)


@bp.get("/Consent/<resource_id>/_history")
@requires_scope("Consent", "r")
def consent_history(resource_id: str) -> Response:
    """Every version of a Consent, newest first."""
    with services().database.transaction() as session:
        row, patient = _visible_consent(session, resource_id)
        bundle = history_bundle(all_versions(session, "Consent", row.id))
        audit_request(session, entities=_entities(patient, row.id), patient_id=patient.id)
    return fhir_response(bundle)


@bp.put("/Consent/<resource_id>")
@requires_scope("Consent", "u")
def consent_update(resource_id: str) -> Response:
    """Change a Consent's status (withdrawal: `inactive`), by the recording organisation."""
    data = request_body()
    now = services().clock.now()
    with services().database.transaction() as session:
        row, patient = _visible_consent(session, resource_id)
        check_if_match(row.version)
        resource = _checked(data)
        if resource.get("id") not in (None, resource_id):
            raise invalid([Issue("error", "invariant", "the resource id does not match the URL", ("Consent.id",))])
        current = row.resource
        changed = sorted(
            key for key in set(current) | set(resource)
            if key not in _UNCHANGEABLE_KEYS and current.get(key) != resource.get(key)
        )
        if changed:
            raise invalid([Issue("error", "business-rule", f"only Consent.status may change (not {name})",
                                 (f"Consent.{name}",)) for name in changed])
        if current["status"] in _FINAL and resource["status"] != current["status"]:
            raise invalid([Issue("error", "business-rule", f"a Consent that is {current['status']} cannot change status",
                                 ("Consent.status",))])
        if row.organisation_id != g.caller.organisation_id:
            raise FhirError(403, "forbidden", "only the recording organisation may change a Consent; "
                            "others withdraw by recording a new deny Consent")
        resource["organization"] = current.get("organization", [])
        stored = service.change_consent(session, row, resource, patient, now)
        audit_request(session, entities=_entities(patient, row.id), patient_id=patient.id)
    return write_response(stored.row.resource, 200, [stored.warning] if stored.warning else None)


@bp.get("/Consent")
@requires_scope("Consent", "s")
def consent_search() -> Response:
    """Search the consents of patients the caller can see, newest decision first."""
    search = parse_search(SEARCH_PARAMS)
    sort = search.params.pop("_sort", ["-date"])[0]
    if sort not in ("date", "-date"):
        raise FhirError(400, "not-supported", "_sort must be date or -date")
    with services().database.transaction() as session:
        bundle = _search(session, search, descending=sort == "-date")
        audit_request(session)
    return fhir_response(bundle)


def _search(session: Session, search: SearchRequest, descending: bool) -> dict[str, Any]:
    conditions: list[Any] = [service.visible_to(g.caller.organisation_id)]
    patients = split_values(search.params.get("patient", []))
    if patients:
        conditions.append(ConsentRow.patient_id.in_([reference_id(v, "patient", "Patient") for v in patients]))
    for value in split_values(search.params.get("patient.identifier", [])):
        patient = find_by_nhs_number(session, nhs_number_value(value, "patient.identifier"))
        conditions.append(ConsentRow.patient_id == (patient.id if patient else None))
    if "status" in search.params:
        conditions.append(ConsentRow.status.in_([code_value(v, "status", CONSENT_STATUSES)
                                                 for v in split_values(search.params["status"])]))
    for value in search.params.get("date", []):
        conditions.append(date_clause(ConsentRow.date_time, parse_date(value, "date")))
    for value in split_values(search.params.get("category", [])):
        # The profile requires LOINC 59284-0 on every Consent; no other category is indexed.
        system, code = split_token(value)
        if not (code == "59284-0" and system in (None, codes.LOINC_SYSTEM)):
            conditions.append(ConsentRow.id.is_(None))
    for value in split_values(search.params.get("_tag", [])):
        system, code = split_token(value)
        if code == codes.ConsentValidity.DECISION_MAKER_NOT_VALID and system in (None, codes.code_system_url("consent-validity")):
            conditions.append(ConsentRow.maker_valid.is_(False))
        elif code == codes.ConsentReview.CONTESTED and system in (None, codes.code_system_url("consent-review")):
            conditions.append(ConsentRow.contested.is_(True))
        else:
            conditions.append(ConsentRow.id.is_(None))
    total = session.scalar(select(func.count()).select_from(ConsentRow).where(*conditions)) or 0
    page = keyset_page(
        session,
        select(ConsentRow).where(*conditions),
        search,
        moment=ConsentRow.date_time,
        tiebreak=ConsentRow.id,
        parse_tiebreak=uuid.UUID,
        descending=descending,
        path="/fhir/Consent",
    )
    return searchset([r.resource for r in page.rows], total, page.self_url, page.next_url, search.ignored_outcome())


def _evaluation_instant(value: str | None) -> datetime:
    """`at`: a date (the end of that Europe/London day) or a dateTime; default now."""
    now = services().clock.now()
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
    identifier, recipient, purpose = (search.first(n) for n in ("patient.identifier", "recipient", "purpose"))
    if not identifier or not recipient or not purpose:
        raise FhirError(400, "required", "$evaluate needs patient.identifier, recipient and purpose")
    if purpose not in {p.value for p in codes.Purpose}:
        raise FhirError(400, "code-invalid", f"purpose {purpose!r} is not a code of {codes.code_system_url('purpose')}")
    nhs_number = nhs_number_value(identifier, "patient.identifier")
    recipient = ods_value(recipient, "recipient")
    at = _evaluation_instant(search.first("at"))
    with services().database.transaction() as session:
        patient = find_by_nhs_number(session, nhs_number)
        if patient is None or visible_patient(session, patient.id, g.caller.organisation_id) is None:
            raise not_found("Patient")
        decision = service.evaluate(session, patient, recipient, purpose, at)
        deciding = uuid.UUID(decision.deciding.id) if decision.deciding else None
        outcome_desc = "permit" if decision.permit else f"deny: {decision.reason}"
        audit_request(session, entities=_entities(patient, deciding), patient_id=patient.id,
                      kind=AuditKind.OPERATION, outcome_desc=outcome_desc)
    parameters: list[dict[str, Any]] = [{"name": "decision", "valueCode": "permit" if decision.permit else "deny"}]
    if decision.reason is not None:
        parameters.append({"name": "reason", "valueCode": str(decision.reason)})
    if deciding is not None:
        parameters.append({"name": "consent", "valueReference": {"reference": f"Consent/{deciding}"}})
    return fhir_response({"resourceType": "Parameters", "parameter": parameters})

