"""`Task`: advice requests — create (LA only), read, vread, update and JSON Patch for
transitions, search (with the derived `business-status` and the custom `due`), history.
HTTP only: each view parses, calls one use case of `advice_requests.service`, answers."""

from __future__ import annotations

import contextlib
import uuid
from typing import Final

from flask import Response, request

from exchange import codes
from exchange.advice_requests import service
from exchange.advice_requests.profile import TASK_STATUSES
from exchange.advice_requests.queries import OrganisationKey, TaskFilters, TaskOrder
from exchange.api.auditing import request_caller, search_query
from exchange.api.context import services
from exchange.api.fhir import bp
from exchange.api.fhir.responses import fhir_response, searchset
from exchange.api.fhir.rest import (
    history_bundle,
    request_body,
    resource_uuid,
    version_number,
    write_response,
)
from exchange.api.fhir.search import (
    SearchRequest,
    codes_of,
    groups,
    nhs_numbers,
    ods_value,
    one_of,
    parse_date,
    parse_search,
    patient_ids,
)
from exchange.api.guards import requires_scope
from exchange.codes import TaskBusinessStatus
from exchange.documents.task_outputs import output_documents
from exchange.fhir.capability import ResourceCapability, SearchParam
from exchange.fhir.outcome import FhirError

SEARCH_PARAMS: Final = (
    "patient",
    "patient.identifier",
    "owner",
    "owner:identifier",
    "requester",
    "requester:identifier",
    "status",
    "code",
    "business-status",
    "authored-on",
    "due",
    "_lastUpdated",
    "_sort",
)
#: `_sort` names and the order each asks for.
SORTS: Final[dict[str, TaskOrder]] = {
    "authored-on": "authored",
    "date": "authored",
    "_lastUpdated": "last-updated",
    "due": "due",
}
TASK = ResourceCapability(
    type="Task",
    interactions=("create", "read", "vread", "update", "patch", "search-type", "history-instance"),
    search_params=(
        SearchParam("patient", "reference"),
        SearchParam("patient.identifier", "token"),
        SearchParam("owner", "reference", documentation="ODS system|code accepted"),
        SearchParam("requester", "reference", documentation="ODS system|code accepted"),
        SearchParam("status", "token"),
        SearchParam("code", "token"),
        SearchParam(
            "business-status",
            "token",
            definition=f"{codes.CANONICAL_BASE}/SearchParameter/Task-business-status",
        ),
        SearchParam("authored-on", "date"),
        SearchParam("due", "date", definition=f"{codes.CANONICAL_BASE}/SearchParameter/Task-due"),
        SearchParam("_lastUpdated", "date"),
    ),
    profile=codes.PROFILE_ADVICE_REQUEST,
    operations=(
        ("six-week-report", f"{codes.CANONICAL_BASE}/OperationDefinition/Task-six-week-report"),
    ),
)


@bp.post("/Task")
@requires_scope("Task", "c")
def task_create() -> Response:
    """An LA asks a provider or the ICB for advice: the statutory clock starts now."""
    data = request_body()
    ctx = services()
    with ctx.database.transaction() as session:
        stored = service.create_task(session, request_caller(), data, ctx.clock.now())
    return write_response(stored, 201)


@bp.get("/Task/<resource_id>")
@requires_scope("Task", "r")
def task_read(resource_id: str) -> Response:
    """Read a request the caller's organisation takes part in (never 304: its business
    status changes with the calendar)."""
    task_id = resource_uuid("Task", resource_id)
    ctx = services()
    with ctx.database.transaction() as session:
        resource = service.read_task(session, request_caller(), task_id, ctx.clock.now())
    return fhir_response(resource)


@bp.get("/Task/<resource_id>/_history/<version>")
@requires_scope("Task", "r")
def task_vread(resource_id: str, version: str) -> Response:
    """Read one version of a request."""
    task_id = resource_uuid("Task", resource_id)
    ctx = services()
    with ctx.database.transaction() as session:
        stored = service.read_task_version(
            session, request_caller(), task_id, version_number(version), ctx.clock.now()
        )
    return fhir_response(stored)


@bp.get("/Task/<resource_id>/_history")
@requires_scope("Task", "r")
def task_history(resource_id: str) -> Response:
    """Every version of a request, newest first."""
    task_id = resource_uuid("Task", resource_id)
    ctx = services()
    with ctx.database.transaction() as session:
        versions = service.task_history(session, request_caller(), task_id, ctx.clock.now())
    return fhir_response(history_bundle(versions))


@bp.put("/Task/<resource_id>")
@requires_scope("Task", "u")
def task_update(resource_id: str) -> Response:
    """Change a request (a transition of the table, a note, a clock exception)."""
    data = request_body()
    task_id = resource_uuid("Task", resource_id)
    ctx = services()
    with ctx.database.transaction() as session:
        stored = service.change_task(
            session,
            request_caller(),
            task_id,
            data,
            request.headers.get("If-Match"),
            output_documents(session),
            ctx.clock.now(),
        )
    return write_response(stored, 200)


@bp.patch("/Task/<resource_id>")
@requires_scope("Task", "u")
def task_patch(resource_id: str) -> Response:
    """Change a request with a JSON Patch (RFC 6902) of its current version."""
    if request.mimetype != "application/json-patch+json":
        raise FhirError(415, "not-supported", "PATCH bodies must be application/json-patch+json")
    operations = request_body()
    task_id = resource_uuid("Task", resource_id)
    ctx = services()
    with ctx.database.transaction() as session:
        stored = service.patch_task(
            session,
            request_caller(),
            task_id,
            operations,
            request.headers.get("If-Match"),
            output_documents(session),
            ctx.clock.now(),
        )
    return write_response(stored, 200)


def _organisations(values: list[str], parameter: str) -> list[OrganisationKey]:
    """Organisations named by `system|ODS`, a bare ODS code or `Organization/<id>` (an id
    that is not a UUID names no organisation, so matches nothing)."""
    keys: list[OrganisationKey] = []
    for value in values:
        if value.startswith("Organization/"):
            with contextlib.suppress(ValueError):
                keys.append(uuid.UUID(value.removeprefix("Organization/")))
        else:
            keys.append(ods_value(value, parameter))
    return keys


def _filters(search: SearchRequest) -> TaskFilters:
    """The search parameters as TaskFilters (400 for a value a parameter cannot take).
    Every element searched holds one value, so a parameter repeated (AND) narrows to the
    values all its repetitions allow. A reference parameter without a value narrows
    nothing; a token parameter without one matches nothing."""
    params = search.params

    def references(name: str, *aliases: str) -> list[list[str]]:
        return groups(search, name, *aliases, keep_empty=False)

    business = codes_of(
        search, "business-status", TaskBusinessStatus, codes.code_system_url("task-business-status")
    )
    return TaskFilters(
        patient_ids=patient_ids(search, "patient"),
        nhs_numbers=nhs_numbers(search),
        owners=one_of(
            [_organisations(g, "owner") for g in references("owner", "owner:identifier")]
        ),
        requesters=one_of(
            [
                _organisations(g, "requester")
                for g in references("requester", "requester:identifier")
            ]
        ),
        statuses=codes_of(search, "status", TASK_STATUSES),
        codes=codes_of(search, "code", codes.TaskType, codes.code_system_url("task-type")),
        business_statuses=(None if business is None else [TaskBusinessStatus(v) for v in business]),
        authored=[parse_date(value, "authored-on") for value in params.get("authored-on", [])],
        last_updated=[
            parse_date(value, "_lastUpdated") for value in params.get("_lastUpdated", [])
        ],
        due=[parse_date(value, "due") for value in params.get("due", [])],
    )


@bp.get("/Task")
@requires_scope("Task", "s")
def task_search() -> Response:
    """Search the caller's requests (as requester, owner or previous owner)."""
    search = parse_search(SEARCH_PARAMS)
    sort = search.params.pop("_sort", ["-authored-on"])[0]
    sort_name = sort.lstrip("-")
    if sort_name not in SORTS:
        raise FhirError(
            400,
            "not-supported",
            "_sort must be authored-on, due or _lastUpdated (with - for descending)",
        )
    filters = _filters(search)
    paging = search.paging(descending=sort.startswith("-"))
    ctx = services()
    with ctx.database.transaction() as session:
        found = service.search_tasks(
            session,
            request_caller(),
            filters,
            SORTS[sort_name],
            paging,
            search_query(),
            ctx.clock.now(),
        )
    self_url, next_url = search.links("/fhir/Task", found.next, sort_name, paging.descending)
    return fhir_response(
        searchset(found.resources, found.total, self_url, next_url, search.ignored_outcome())
    )
