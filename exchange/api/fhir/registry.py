"""`Organization` and `Contract` (data-sharing agreements): the registry, read-only. HTTP
only: each view parses, calls one use case of `agreements.service`, answers."""

from __future__ import annotations

from flask import Response

from exchange import codes
from exchange.agreements import service
from exchange.api.auditing import request_caller, search_query
from exchange.api.context import services
from exchange.api.fhir import bp
from exchange.api.fhir.responses import fhir_response, searchset
from exchange.api.fhir.rest import resource_uuid
from exchange.api.fhir.search import code_value, ods_value, parse_search
from exchange.api.guards import requires_scope
from exchange.fhir.capability import ResourceCapability, SearchParam

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


@bp.get("/Organization/<resource_id>")
@requires_scope("Organization", "r")
def organization_read(resource_id: str) -> Response:
    """Read one organisation."""
    ctx = services()
    with ctx.database.transaction() as session:
        resource = service.read_organisation(
            session, request_caller(), resource_uuid("Organization", resource_id), ctx.clock.now()
        )
    return fhir_response(resource)


@bp.get("/Organization")
@requires_scope("Organization", "s")
def organization_search() -> Response:
    """Search organisations by ODS `identifier` and role `type`."""
    search = parse_search({"identifier", "type"})
    identifier, role = search.first("identifier"), search.first("type")
    ods = ods_value(identifier, "identifier") if identifier is not None else None
    role_code = (
        code_value(role, "type", codes.OrganisationRole, codes.code_system_url("organisation-role"))
        if role is not None
        else None
    )
    paging = search.paging(descending=False)
    ctx = services()
    with ctx.database.transaction() as session:
        found = service.search_organisations(
            session, request_caller(), ods, role_code, paging, search_query(), ctx.clock.now()
        )
    self_url, next_url = search.links("/fhir/Organization", found.next)
    return fhir_response(
        searchset(found.resources, found.total, self_url, next_url, search.ignored_outcome())
    )


@bp.get("/Contract/<resource_id>")
@requires_scope("Contract", "r")
def contract_read(resource_id: str) -> Response:
    """Read one data-sharing agreement."""
    ctx = services()
    with ctx.database.transaction() as session:
        resource = service.read_agreement(
            session, request_caller(), resource_uuid("Contract", resource_id), ctx.clock.now()
        )
    return fhir_response(resource)


@bp.get("/Contract")
@requires_scope("Contract", "s")
def contract_search() -> Response:
    """Search agreements by `status` and `signer` (organisation ODS identifier)."""
    search = parse_search({"status", "signer", "signer:identifier"})
    status, signer = (
        search.first("status"),
        search.first("signer") or search.first("signer:identifier"),
    )
    paging = search.paging(descending=False)
    ctx = services()
    with ctx.database.transaction() as session:
        found = service.search_agreements(
            session,
            request_caller(),
            code_value(status, "status", codes.AGREEMENT_STATUSES) if status else None,
            ods_value(signer, "signer") if signer else None,
            paging,
            search_query(),
            ctx.clock.now(),
        )
    self_url, next_url = search.links("/fhir/Contract", found.next)
    return fhir_response(
        searchset(found.resources, found.total, self_url, next_url, search.ignored_outcome())
    )
