"""`AuditEvent` read and search for IG clients (`system/AuditEvent.rs`). HTTP only: the
search parameters become `trail.queries.EventFilters`, and `trail.service` decides what the
caller's organisation may see (as acting organisation or custodian: `access.md`)."""

from __future__ import annotations

from flask import Response

from exchange import codes
from exchange.api.auditing import request_caller, search_query
from exchange.api.context import services
from exchange.api.fhir import bp
from exchange.api.fhir.responses import fhir_response, searchset
from exchange.api.fhir.rest import resource_uuid
from exchange.api.fhir.search import (
    SearchRequest,
    any_of,
    groups,
    nhs_numbers,
    ods_value,
    one_of,
    parse_date,
    parse_search,
    patient_ids,
    split_token,
)
from exchange.api.guards import requires_scope
from exchange.audit.events import AuditKind
from exchange.fhir.capability import ResourceCapability, SearchParam
from exchange.fhir.outcome import FhirError
from exchange.trail import service
from exchange.trail.queries import Agent, AgentKind, EventFilters

SEARCH_PARAMS = (
    "date",
    "entity",
    "agent",
    "agent:identifier",
    "type",
    "subtype",
    "outcome",
    "action",
    "_lastUpdated",
    "purpose",
    "patient",
    "patient.identifier",
)

AUDIT_EVENT = ResourceCapability(
    type="AuditEvent",
    interactions=("read", "search-type"),
    search_params=(
        SearchParam("date", "date"),
        SearchParam("patient", "reference"),
        SearchParam(
            "patient.identifier", "token", documentation="https://fhir.nhs.uk/Id/nhs-number|<n>"
        ),
        SearchParam("entity", "reference"),
        SearchParam(
            "agent",
            "reference",
            documentation="client id, console user or ODS code; system|value accepted",
        ),
        SearchParam("type", "token"),
        SearchParam("subtype", "token"),
        SearchParam("outcome", "token"),
        SearchParam("action", "token"),
        SearchParam("_lastUpdated", "date"),
        SearchParam(
            "purpose",
            "token",
            definition=f"{codes.CANONICAL_BASE}/SearchParameter/AuditEvent-purpose",
        ),
    ),
    versioning="no-version",
)


def _kinds(values: list[str], coding: str) -> list[str]:
    """AuditKind values whose `type` or `subtype` coding matches any of `values`."""
    found = []
    for value in values:
        system, code = split_token(value)
        found += [
            kind.value
            for kind in AuditKind
            if getattr(kind, coding)["code"] == code
            and system in (None, getattr(kind, coding)["system"])
        ]
    return found


def _agent(value: str) -> Agent:
    system, code = split_token(value)
    if system == codes.ODS_SYSTEM:
        return Agent("organisation", ods_value(value, "agent"))
    kinds: dict[str | None, AgentKind] = {
        codes.CLIENT_ID_SYSTEM: "client",
        codes.CONSOLE_USER_SYSTEM: "user",
        None: "any",
    }
    if system not in kinds:
        raise FhirError(
            400,
            "invalid",
            f"agent: {system!r} is not an identifier system of an agent",
            expression=("agent",),
        )
    return Agent(kinds[system], code)


def _filters(search: SearchRequest) -> EventFilters:
    """The search parameters as EventFilters: repetitions of a parameter must all be met
    (AND), each by one of its comma-separated values (OR). A record has one kind,
    outcome, action, purpose and patient, so repetitions of those narrow to the values
    they all allow; it names several agents and entities, so those stay groups."""
    params = search.params
    kinds = one_of(
        [
            _kinds(group, coding)
            for name, coding in (("type", "type_coding"), ("subtype", "subtype_coding"))
            for group in groups(search, name)
        ]
    )

    def codes_of(name: str) -> list[str] | None:
        return any_of(search, lambda value: split_token(value)[1], name)

    outcomes, actions, purposes = codes_of("outcome"), codes_of("action"), codes_of("purpose")
    patients, numbers = patient_ids(search, "patient"), nhs_numbers(search)
    narrowed = (outcomes, actions, purposes, patients, numbers)
    return EventFilters(
        recorded=[
            parse_date(value, name)
            for name in ("date", "_lastUpdated")
            for value in params.get(name, [])
        ],
        outcomes=outcomes or (),
        actions=actions or (),
        purposes=purposes or (),
        kinds=kinds,
        agents=[
            [_agent(v) for v in group]
            for group in groups(search, "agent", "agent:identifier", keep_empty=False)
        ],
        patient_ids=patients or (),
        nhs_numbers=numbers or (),
        entities=groups(search, "entity", keep_empty=False),
        nothing=any(values == [] for values in narrowed),
    )


@bp.get("/AuditEvent/<resource_id>")
@requires_scope("AuditEvent", "r")
def audit_event_read(resource_id: str) -> Response:
    """Read one audit event of the caller's organisation."""
    ctx = services()
    with ctx.database.transaction() as session:
        resource = service.read_event(
            session, request_caller(), resource_uuid("AuditEvent", resource_id), ctx.clock.now()
        )
    return fhir_response(resource)


@bp.get("/AuditEvent")
@requires_scope("AuditEvent", "s")
def audit_event_search() -> Response:
    """Search the caller's organisation's audit events, newest first unless `_sort=date`."""
    search = parse_search(SEARCH_PARAMS)
    sort = search.params.pop("_sort", ["-date"])[0]
    if sort not in ("date", "-date", "_lastUpdated", "-_lastUpdated"):
        raise FhirError(
            400, "not-supported", "_sort must be date or _lastUpdated (with - for descending)"
        )
    filters = _filters(search)
    paging = search.paging(descending=sort.startswith("-"))
    ctx = services()
    with ctx.database.transaction() as session:
        found = service.search_events(
            session, request_caller(), filters, paging, search_query(), ctx.clock.now()
        )
    self_url, next_url = search.links("/fhir/AuditEvent", found.next, "date", paging.descending)
    return fhir_response(
        searchset(found.resources, found.total, self_url, next_url, search.ignored_outcome())
    )
