"""`AuditEvent` read and search for IG clients (`system/AuditEvent.rs`), limited to events
where the caller's organisation is the acting organisation or the custodian (`access.md`).

Records are served as stored (the payload the hash chain covers), with `meta` and, once
sealed, the `audit-chain` extension (sequence, previousHash, hash).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from flask import Response, g
from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from exchange import codes
from exchange.api.auditing import audit_request
from exchange.api.context import services
from exchange.api.fhir import bp
from exchange.api.fhir.responses import fhir_response, searchset
from exchange.api.fhir.search import (
    SearchRequest,
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
from exchange.audit.models import AuditEntityRef, AuditRecord
from exchange.fhir.capability import ResourceCapability, SearchParam
from exchange.fhir.outcome import FhirError, not_found
from exchange.patients.models import Patient

SEARCH_PARAMS = (
    "date", "entity", "agent", "agent:identifier", "type", "subtype", "outcome", "action", "_lastUpdated",
    "purpose", "patient", "patient.identifier",
)

AUDIT_EVENT = ResourceCapability(
    type="AuditEvent",
    interactions=("read", "search-type"),
    search_params=(
        SearchParam("date", "date"),
        SearchParam("patient", "reference"),
        SearchParam("patient.identifier", "token", documentation="https://fhir.nhs.uk/Id/nhs-number|<n>"),
        SearchParam("entity", "reference"),
        SearchParam("agent", "reference", documentation="client id, console user or ODS code; system|value accepted"),
        SearchParam("type", "token"),
        SearchParam("subtype", "token"),
        SearchParam("outcome", "token"),
        SearchParam("action", "token"),
        SearchParam("_lastUpdated", "date"),
        SearchParam("purpose", "token", definition=f"{codes.CANONICAL_BASE}/SearchParameter/AuditEvent-purpose"),
    ),
    versioning="no-version",
)


def _instant(value: Any) -> str:
    return str(value.isoformat(timespec="milliseconds")).replace("+00:00", "Z")


def audit_event_resource(row: AuditRecord) -> dict[str, Any]:
    """The stored AuditEvent with its meta and chain position."""
    resource: dict[str, Any] = json.loads(row.payload)
    resource["meta"] = {**resource.get("meta", {}), "versionId": "1", "lastUpdated": _instant(row.recorded)}
    if row.sequence is not None:
        resource.setdefault("extension", []).append(
            {
                "url": codes.EXT_AUDIT_CHAIN,
                "extension": [
                    {"url": "sequence", "valueString": str(row.sequence)},
                    {"url": "previousHash", "valueString": row.previous_hash},
                    {"url": "hash", "valueString": row.hash},
                ],
            }
        )
    return resource


def _visible_to(organisation: str) -> ColumnElement[bool]:
    return or_(AuditRecord.agent_org == organisation, AuditRecord.custodian_org == organisation)


def _kinds(value: str, coding: str) -> list[str]:
    system, code = split_token(value)
    return [
        kind.value
        for kind in AuditKind
        if getattr(kind, coding)["code"] == code and system in (None, getattr(kind, coding)["system"])
    ]


def _agent_clause(value: str) -> ColumnElement[bool]:
    system, code = split_token(value)
    if system == codes.ODS_SYSTEM:
        return AuditRecord.agent_org == ods_value(value, "agent")
    if system == codes.CLIENT_ID_SYSTEM:
        return AuditRecord.agent_client_id == code
    if system == codes.CONSOLE_USER_SYSTEM:
        return AuditRecord.agent_user == code
    if system is not None:
        return AuditRecord.id.is_(None)  # an identifier system no agent has
    return or_(AuditRecord.agent_client_id == code, AuditRecord.agent_org == code, AuditRecord.agent_user == code)


def _patient_clause(value: str) -> ColumnElement[bool]:
    return AuditRecord.patient_id == reference_id(value, "patient", "Patient")


def _filters(search: SearchRequest) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = []
    for name in ("date", "_lastUpdated"):
        for value in search.params.get(name, []):
            clauses.append(date_clause(AuditRecord.recorded, parse_date(value, name)))
    simple = {
        "outcome": AuditRecord.outcome,
        "action": AuditRecord.action,
        "purpose": AuditRecord.purpose,
    }
    for name, column in simple.items():
        if name in search.params:
            clauses.append(column.in_([split_token(v)[1] for v in split_values(search.params[name])]))
    for name, coding in (("type", "type_coding"), ("subtype", "subtype_coding")):
        if name in search.params:
            kinds = [k for v in split_values(search.params[name]) for k in _kinds(v, coding)]
            clauses.append(AuditRecord.kind.in_(kinds))
    agents = split_values(search.params.get("agent", []) + search.params.get("agent:identifier", []))
    if agents:
        clauses.append(or_(*(_agent_clause(v) for v in agents)))
    if "patient" in search.params:
        clauses.append(or_(*(_patient_clause(v) for v in split_values(search.params["patient"]))))
    numbers = split_values(search.params.get("patient.identifier", []))
    if numbers:
        wanted = [nhs_number_value(v, "patient.identifier") for v in numbers]
        clauses.append(AuditRecord.patient_id.in_(select(Patient.id).where(Patient.nhs_number.in_(wanted))))
    if "entity" in search.params:
        references = split_values(search.params["entity"])
        clauses.append(
            AuditRecord.id.in_(select(AuditEntityRef.audit_id).where(AuditEntityRef.reference.in_(references)))
        )
    return clauses


@bp.get("/AuditEvent/<resource_id>")
@requires_scope("AuditEvent", "r")
def audit_event_read(resource_id: str) -> Response:
    """Read one audit event of the caller's organisation."""
    try:
        event_id = uuid.UUID(resource_id)
    except ValueError:
        raise not_found("AuditEvent", resource_id) from None
    with services().database.transaction() as session:
        row = session.scalars(
            select(AuditRecord).where(AuditRecord.event_id == event_id, _visible_to(g.caller.organisation))
        ).first()
        if row is None:
            raise not_found("AuditEvent", resource_id)
        resource = audit_event_resource(row)
        audit_request(session, entities=(Entity(f"AuditEvent/{resource_id}", "security-resource"),))
    return fhir_response(resource)


@bp.get("/AuditEvent")
@requires_scope("AuditEvent", "s")
def audit_event_search() -> Response:
    """Search the caller's organisation's audit events, newest first unless `_sort=date`."""
    search = parse_search(SEARCH_PARAMS)
    sort = search.params.pop("_sort", ["-date"])[0]
    if sort not in ("date", "-date", "_lastUpdated", "-_lastUpdated"):
        raise FhirError(400, "not-supported", "_sort must be date or _lastUpdated (with - for descending)")
    descending = sort.startswith("-")
    with services().database.transaction() as session:
        bundle = _search(session, search, descending)
        audit_request(session)
    return fhir_response(bundle)


def _search(session: Session, search: SearchRequest, descending: bool) -> dict[str, Any]:
    conditions = [_visible_to(g.caller.organisation), *_filters(search)]
    total = session.scalar(select(func.count()).select_from(AuditRecord).where(*conditions)) or 0
    page = keyset_page(
        session,
        select(AuditRecord).where(*conditions),
        search,
        moment=AuditRecord.recorded,
        tiebreak=AuditRecord.id,
        parse_tiebreak=int,
        descending=descending,
        path="/fhir/AuditEvent",
    )
    resources = [audit_event_resource(r) for r in page.rows]
    return searchset(resources, total, page.self_url, page.next_url, search.ignored_outcome())
