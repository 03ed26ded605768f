"""`Organization` and `Contract` (data-sharing agreements): the registry, read-only."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from flask import Response
from sqlalchemy import func, select
from sqlalchemy.orm import InstrumentedAttribute, Session
from sqlalchemy.sql import Select

from exchange import codes
from exchange.agreements.models import Agreement, AgreementParty, Organisation
from exchange.agreements.resources import contract_resource, organization_resource
from exchange.api.auditing import audit_request
from exchange.api.context import services
from exchange.api.fhir import bp
from exchange.api.fhir.responses import fhir_response, searchset
from exchange.api.fhir.search import SearchRequest, code_value, ods_value, page_urls, parse_search
from exchange.api.guards import requires_scope
from exchange.audit.events import Entity
from exchange.fhir.capability import ResourceCapability, SearchParam
from exchange.fhir.outcome import not_found
from exchange.registry.specs import AGREEMENT_STATUSES

ORGANIZATION = ResourceCapability(
    type="Organization",
    interactions=("read", "search-type"),
    search_params=(SearchParam("identifier", "token"), SearchParam("type", "token")),
    versioning="versioned",
)
CONTRACT = ResourceCapability(
    type="Contract",
    interactions=("read", "search-type"),
    search_params=(
        SearchParam("status", "token"),
        SearchParam("signer", "reference", documentation="By organisation: ODS system|code"),
    ),
    profile=codes.PROFILE_DATA_SHARING_AGREEMENT,
    versioning="versioned",
)


def _uuid(value: str, resource_type: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise not_found(resource_type, None) from None


@bp.get("/Organization/<resource_id>")
@requires_scope("Organization", "r")
def organization_read(resource_id: str) -> Response:
    """Read one organisation."""
    with services().database.transaction() as session:
        organisation = session.get(Organisation, _uuid(resource_id, "Organization"))
        if organisation is None:
            raise not_found("Organization", resource_id)
        resource = organization_resource(organisation)
        audit_request(session, entities=(Entity(f"Organization/{resource_id}"),))
    return fhir_response(resource)


@bp.get("/Organization")
@requires_scope("Organization", "s")
def organization_search() -> Response:
    """Search organisations by ODS `identifier` and role `type`."""
    search = parse_search({"identifier", "type"})
    query = select(Organisation)
    if (identifier := search.first("identifier")) is not None:
        query = query.where(Organisation.ods == ods_value(identifier, "identifier"))
    if (role := search.first("type")) is not None:
        code = code_value(role, "type", codes.OrganisationRole, codes.code_system_url("organisation-role"))
        query = query.where(Organisation.role == code)
    with services().database.transaction() as session:
        bundle = _page(session, search, query, Organisation.ods, "/fhir/Organization", organization_resource)
        audit_request(session)
    return fhir_response(bundle)


@bp.get("/Contract/<resource_id>")
@requires_scope("Contract", "r")
def contract_read(resource_id: str) -> Response:
    """Read one data-sharing agreement."""
    with services().database.transaction() as session:
        agreement = session.get(Agreement, _uuid(resource_id, "Contract"))
        if agreement is None:
            raise not_found("Contract", resource_id)
        resource = contract_resource(agreement)
        audit_request(session, entities=(Entity(f"Contract/{resource_id}", "agreement"),))
    return fhir_response(resource)


@bp.get("/Contract")
@requires_scope("Contract", "s")
def contract_search() -> Response:
    """Search agreements by `status` and `signer` (organisation ODS identifier)."""
    search = parse_search({"status", "signer", "signer:identifier"})
    query = select(Agreement)
    if (status := search.first("status")) is not None:
        query = query.where(Agreement.status == code_value(status, "status", AGREEMENT_STATUSES))
    signer = search.first("signer") or search.first("signer:identifier")
    if signer is not None:
        ods = ods_value(signer, "signer")
        query = query.where(
            Agreement.id.in_(
                select(AgreementParty.agreement_id)
                .join(Organisation, Organisation.id == AgreementParty.organisation_id)
                .where(Organisation.ods == ods)
            )
        )
    with services().database.transaction() as session:
        bundle = _page(session, search, query, Agreement.agreement_id, "/fhir/Contract", contract_resource)
        audit_request(session)
    return fhir_response(bundle)


def _page(
    session: Session,
    search: SearchRequest,
    query: Select[Any],
    key: InstrumentedAttribute[str],
    path: str,
    render: Callable[[Any], dict[str, Any]],
) -> dict[str, Any]:
    """One page of a keyset-paginated search ordered by a unique string `key`."""
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    if search.cursor is not None:
        query = query.where(key > str(search.cursor.get("after", "")))
    rows = list(session.scalars(query.order_by(key).limit(search.count + 1)))
    more = len(rows) > search.count
    rows = rows[: search.count]
    next_position = {"after": getattr(rows[-1], key.key)} if more and rows else None
    self_url, next_url = page_urls(search, path, next_position)
    return searchset([render(row) for row in rows], total, self_url, next_url, search.ignored_outcome())
