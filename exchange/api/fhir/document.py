"""`DocumentReference`: attach uploaded (or inline) content to a Task's patient, supersede
an earlier version, change a document's status, read or search under the read decision of
`access.md`. HTTP only: each view parses, calls one use case of `documents.service`, answers;
the search parameters become `documents.queries.DocumentFilters`."""

from __future__ import annotations

from typing import Final

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
    any_of,
    codes_of,
    groups,
    nhs_numbers,
    ods_value,
    parse_date,
    parse_search,
    patient_ids,
    reference_id,
    split_token,
)
from exchange.api.guards import requires_scope
from exchange.audit.service import audited_read
from exchange.documents import service
from exchange.documents.profile import DOCUMENT_STATUSES
from exchange.documents.queries import DocumentFilters, SortKey, Token
from exchange.fhir.capability import ResourceCapability, SearchParam
from exchange.fhir.outcome import FhirError

DOCUMENT_REFERENCE = ResourceCapability(
    type="DocumentReference",
    interactions=("create", "read", "vread", "update", "search-type", "history-instance"),
    search_params=tuple(
        SearchParam(n, k)
        for n, k in (
            ("patient", "reference"),
            ("patient.identifier", "token"),
            ("subject", "reference"),
            ("type", "token"),
            ("category", "token"),
            ("custodian", "reference"),
            ("author", "reference"),
            ("date", "date"),
            ("status", "token"),
            ("related", "reference"),
            ("_lastUpdated", "date"),
        )
    ),
    profile=codes.PROFILE_HEALTH_ADVICE,
)

SEARCH_PARAMS: Final = (
    "patient",
    "patient.identifier",
    "subject",
    "type",
    "category",
    "custodian",
    "custodian:identifier",
    "author",
    "author:identifier",
    "date",
    "status",
    "related",
    "_lastUpdated",
    "_sort",
)
#: `_sort` values and what they sort by.
_SORTS: Final[dict[str, SortKey]] = {"date": "date", "_lastUpdated": "last_updated"}


@bp.post("/DocumentReference")
@requires_scope("DocumentReference", "c")
def document_create() -> Response:
    """Record a document for a Task's patient, held encrypted; its custodian is the caller."""
    data = request_body()
    ctx = services()
    stored = service.attach_document(
        ctx.database, request_caller(), ctx, data, ctx.settings.max_document_bytes, ctx.clock.now()
    )
    return write_response(stored, 201)


@bp.get("/DocumentReference/<resource_id>")
@requires_scope("DocumentReference", "r")
def document_read(resource_id: str) -> Response:
    """Read a document's metadata, if the access decision allows."""
    ctx = services()
    with audited_read(ctx.database) as session:
        resource = service.read_document(
            session,
            request_caller(),
            resource_uuid("DocumentReference", resource_id),
            ctx.clock.now(),
        )
    return read_response(resource)


def _filters(search: SearchRequest) -> DocumentFilters:
    """The search parameters as DocumentFilters (400 for a value a parameter cannot take):
    repetitions of a parameter must all be met (AND), each by one of its comma-separated
    values (OR). A reference parameter without a value narrows nothing; a token parameter
    without one matches nothing."""
    params = search.params
    document_types = codes.code_system_url("document-type")

    def references(*names: str) -> list[list[str]]:
        return groups(search, *names, keep_empty=False)

    return DocumentFilters(
        patient_ids=patient_ids(search, "patient", "subject"),
        nhs_numbers=nhs_numbers(search),
        types=codes_of(search, "type", codes.DocumentType, document_types),
        statuses=codes_of(search, "status", DOCUMENT_STATUSES),
        task_ids=any_of(
            search, lambda v: reference_id(v, "related", "Task"), "related", keep_empty=False
        ),
        custodians=any_of(
            search,
            lambda v: ods_value(v, "custodian"),
            "custodian",
            "custodian:identifier",
            keep_empty=False,
        ),
        authors=[
            [Token(*split_token(value)) for value in group]
            for group in references("author", "author:identifier")
        ],
        categories=[
            [Token(*split_token(value)) for value in group] for group in groups(search, "category")
        ],
        dates=[parse_date(value, "date") for value in params.get("date", [])],
        last_updated=[
            parse_date(value, "_lastUpdated") for value in params.get("_lastUpdated", [])
        ],
    )


@bp.get("/DocumentReference")
@requires_scope("DocumentReference", "s")
def document_search() -> Response:
    """Search documents, newest first; what the read decision refuses is left out (each
    consent refusal audited), so `total` counts only what the caller may see."""
    search = parse_search(SEARCH_PARAMS)
    sort = search.params.pop("_sort", ["-date"])[0]
    sort_name = sort.removeprefix("-")
    if sort_name not in _SORTS:
        raise FhirError(
            400, "not-supported", "_sort must be date or _lastUpdated (with - for descending)"
        )
    filters = _filters(search)
    paging = search.paging(descending=sort.startswith("-"))
    ctx = services()
    with audited_read(ctx.database) as session:
        found = service.search_documents(
            session,
            request_caller(),
            filters,
            _SORTS[sort_name],
            paging,
            search_query(),
            ctx.clock.now(),
        )
    self_url, next_url = search.links(
        "/fhir/DocumentReference", found.next, sort_name, paging.descending
    )
    return fhir_response(
        searchset(found.resources, found.total, self_url, next_url, search.ignored_outcome())
    )


@bp.get("/DocumentReference/<resource_id>/_history/<version>")
@requires_scope("DocumentReference", "r")
def document_vread(resource_id: str, version: str) -> Response:
    """One version of a document's metadata, under the same decision as a read."""
    ctx = services()
    with audited_read(ctx.database) as session:
        stored = service.read_document_version(
            session,
            request_caller(),
            resource_uuid("DocumentReference", resource_id),
            version_number(version),
            ctx.clock.now(),
        )
    return fhir_response(stored)


@bp.get("/DocumentReference/<resource_id>/_history")
@requires_scope("DocumentReference", "r")
def document_history(resource_id: str) -> Response:
    """Every version of a document's metadata."""
    ctx = services()
    with audited_read(ctx.database) as session:
        versions = service.document_history(
            session,
            request_caller(),
            resource_uuid("DocumentReference", resource_id),
            ctx.clock.now(),
        )
    return fhir_response(history_bundle(versions))


@bp.put("/DocumentReference/<resource_id>")
@requires_scope("DocumentReference", "u")
def document_update(resource_id: str) -> Response:
    """The custodian changes a document's status (`superseded`, `entered-in-error`); nothing
    else changes, and nothing is deleted."""
    data = request_body()
    ctx = services()
    with ctx.database.transaction() as session:
        stored = service.change_document_status(
            session,
            request_caller(),
            resource_uuid("DocumentReference", resource_id),
            data,
            request.headers.get("If-Match"),
            ctx.clock.now(),
        )
    return write_response(stored, 200)
