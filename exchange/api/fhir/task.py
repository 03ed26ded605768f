"""`Task`: advice requests — create (LA only), read, vread, update and JSON Patch for
transitions, search (with the derived `business-status` and the custom `due`), history."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any, Final

import jsonpatch
from flask import Response, g, request
from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from exchange import codes
from exchange.advice_requests import service
from exchange.advice_requests.clock_rules import DUE_SOON, OPEN_STATUSES, DueDateError
from exchange.advice_requests.models import TaskParty, TaskRow
from exchange.advice_requests.profile import (
    TASK_STATUSES,
    ods_of,
    task_profile_issues,
    task_type_of,
)
from exchange.advice_requests.workflow import Document, WorkflowError, check_change
from exchange.agreements.models import Organisation
from exchange.agreements.queries import agreement_between
from exchange.api.auditing import audit_request
from exchange.api.context import services
from exchange.api.fhir import bp
from exchange.api.fhir.responses import fhir_response, searchset
from exchange.api.fhir.rest import (
    check_if_match,
    history_bundle,
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
    split_values,
)
from exchange.api.guards import requires_scope
from exchange.audit.events import AuditKind, Entity
from exchange.clock import LONDON, london_date
from exchange.documents.models import DocumentRow
from exchange.errors import Issue
from exchange.fhir.capability import ResourceCapability, SearchParam
from exchange.fhir.outcome import FhirError, forbidden, invalid, not_found
from exchange.fhir.validation import validate_resource
from exchange.patients.models import Patient
from exchange.patients.service import visible_patient
from exchange.versions import all_versions, read_version

SEARCH_PARAMS: Final = (
    "patient", "patient.identifier", "owner", "owner:identifier", "requester", "requester:identifier", "status",
    "code", "business-status", "authored-on", "due", "_lastUpdated", "_sort",
)
TASK = ResourceCapability(
    type="Task",
    interactions=("create", "read", "vread", "update", "patch", "search-type", "history-instance"),
    search_params=(
        SearchParam("patient", "reference"), SearchParam("patient.identifier", "token"),
        SearchParam("owner", "reference", documentation="ODS system|code accepted"),
        SearchParam("requester", "reference", documentation="ODS system|code accepted"),
        SearchParam("status", "token"), SearchParam("code", "token"),
        SearchParam("business-status", "token", definition=f"{codes.CANONICAL_BASE}/SearchParameter/Task-business-status"),
        SearchParam("authored-on", "date"),
        SearchParam("due", "date", definition=f"{codes.CANONICAL_BASE}/SearchParameter/Task-due"),
        SearchParam("_lastUpdated", "date"),
    ),
    profile=codes.PROFILE_ADVICE_REQUEST,
)


def document_lookup(session: Session) -> Callable[[str], Document | None]:
    """How the workflow sees the documents a Task's outputs reference (completion needs
    the owner's advice document related to the Task; written reasons may be a document)."""

    def lookup(reference: str) -> Document | None:
        if not reference.startswith("DocumentReference/"):
            return None
        try:
            document = session.get(DocumentRow, uuid.UUID(reference.removeprefix("DocumentReference/")))
        except ValueError:
            return None
        if document is None or document.status != "current":
            return None
        custodian = session.get(Organisation, document.custodian_id)
        return Document(document.doc_type, custodian.ods if custodian else "", frozenset({str(document.task_id)}))

    return lookup


def _entities(row: TaskRow) -> tuple[Entity, ...]:
    return (Entity(f"Task/{row.id}"), Entity(f"Patient/{row.patient_id}", "patient"))


def _today() -> date:
    return london_date(services().clock.now())


def _organisation(session: Session, ods: str | None, expression: str) -> Organisation:
    organisation = session.scalars(select(Organisation).where(Organisation.ods == ods)).first() if ods else None
    if organisation is None:
        raise invalid([Issue("error", "value", f"{expression} is not a registered organisation", (expression,))])
    return organisation


def _check_owner(session: Session, task_type: str, requester: Organisation, owner: Organisation, expression: str) -> None:
    """The owner's role fits the request (422), and the LA and owner share an agreement
    in force for its purpose (403 no-agreement)."""
    if owner.role not in service.OWNER_ROLES.get(codes.TaskType(task_type), frozenset()):
        raise invalid([Issue("error", "business-rule", f"a {task_type} request cannot be owned by a {owner.role}",
                             (expression,))])
    purpose = service.PURPOSE_OF[codes.TaskType(task_type)]
    if agreement_between(session, requester.id, owner.id, purpose.value, _today()) is None:
        raise forbidden(codes.AccessDenialReason.NO_AGREEMENT,
                        f"no data-sharing agreement in force covers {purpose.value} between the LA and {owner.ods}")


@bp.post("/Task")
@requires_scope("Task", "c")
def task_create() -> Response:
    """An LA asks a provider or the ICB for advice: the statutory clock starts now."""
    data = request_body()
    if not isinstance(data, dict) or data.get("resourceType") != "Task":
        validate_resource(data, "Task", task_profile_issues)
    now = services().clock.now()
    with services().database.transaction() as session:
        reference = (data.get("for") or {}).get("reference") if isinstance(data.get("for"), dict) else None
        patient = None
        if isinstance(reference, str) and reference.startswith("Patient/"):
            try:
                patient = visible_patient(session, uuid.UUID(reference[8:]), g.caller.organisation_id)
            except ValueError:
                patient = None
            if patient is None:
                raise not_found("Patient", reference[8:])
        resource = validate_resource(data, "Task", task_profile_issues)
        problems = []
        if resource["status"] != "requested":
            problems.append(Issue("error", "value", "a new request has status requested", ("Task.status",)))
        requester = session.get(Organisation, g.caller.organisation_id)
        if requester is None:
            raise RuntimeError("the caller's organisation is not registered")
        given_requester = ods_of(resource.get("requester")) if "requester" in resource else requester.ods
        if given_requester != requester.ods:
            problems.append(Issue("error", "value", "Task.requester is set by the server to the caller's organisation",
                                  ("Task.requester",)))
        if problems:
            raise invalid(problems)
        owner = _organisation(session, ods_of(resource.get("owner")), "Task.owner")
        if patient is None:
            raise not_found("Patient")
        if requester.role != "la":
            raise FhirError(403, "forbidden", "only a local authority may request advice")
        _check_owner(session, task_type_of(resource) or "", requester, owner, "Task.owner")
        try:
            row = service.create_task(session, resource, patient, requester, owner, now)
        except DueDateError as error:
            raise invalid([Issue("error", "required", str(error), ("Task.restriction.period.end",))]) from None
        stored = service.served(row, london_date(now))
        audit_request(session, entities=_entities(row), patient_id=row.patient_id, kind=AuditKind.CREATE)
    return write_response(stored, 201)


def _visible_task(session: Session, resource_id: str, lock: bool = False) -> tuple[TaskRow, set[str]]:
    task_id = resource_uuid("Task", resource_id)
    row = session.get(TaskRow, task_id, with_for_update=lock)
    roles = service.roles_of(session, task_id, g.caller.organisation_id) if row is not None else set()
    if row is None or not roles:
        raise not_found("Task", resource_id)
    return row, roles


@bp.get("/Task/<resource_id>")
@requires_scope("Task", "r")
def task_read(resource_id: str) -> Response:
    """Read a request the caller's organisation takes part in (never 304: its business
    status changes with the calendar)."""
    with services().database.transaction() as session:
        row, _ = _visible_task(session, resource_id)
        resource = service.served(row, _today())
        audit_request(session, entities=_entities(row), patient_id=row.patient_id)
    return fhir_response(resource)


@bp.get("/Task/<resource_id>/_history/<version>")
@requires_scope("Task", "r")
def task_vread(resource_id: str, version: str) -> Response:
    """Read one version of a request."""
    with services().database.transaction() as session:
        row, _ = _visible_task(session, resource_id)
        stored = read_version(session, "Task", row.id, version_number(version))
        if stored is None:
            raise not_found("Task", f"{resource_id}/_history/{version}")
        audit_request(session, entities=_entities(row), patient_id=row.patient_id)
    return fhir_response(stored)


@bp.get("/Task/<resource_id>/_history")
@requires_scope("Task", "r")
def task_history(resource_id: str) -> Response:
    """Every version of a request, newest first."""
    with services().database.transaction() as session:
        row, _ = _visible_task(session, resource_id)
        bundle = history_bundle(all_versions(session, "Task", row.id))
        audit_request(session, entities=_entities(row), patient_id=row.patient_id)
    return fhir_response(bundle)


def _change(resource_id: str, make_new: Any) -> Response:
    """The shared path of PUT and PATCH: 404 → 412 → 422 → 403, then the next version."""
    now = services().clock.now()
    with services().database.transaction() as session:
        row, roles = _visible_task(session, resource_id, lock=True)
        check_if_match(row.version)
        new = make_new(copy.deepcopy(row.resource))
        resource = validate_resource(new, "Task", task_profile_issues)
        if resource.get("id") not in (None, resource_id):
            raise invalid([Issue("error", "invariant", "the resource id does not match the URL", ("Task.id",))])
        try:
            change = check_change(row.resource, resource, roles, str(row.id), document_lookup(session))
        except WorkflowError as error:
            if error.status == 422:
                raise invalid([Issue("error", "business-rule", error.message, (error.expression,))]) from None
            raise FhirError(403, "forbidden", error.message) from None
        new_owner = None
        if change.new_owner is not None:
            new_owner = _organisation(session, change.new_owner, "Task.owner")
            requester = session.get(Organisation, row.requester_id)
            if requester is None:
                raise RuntimeError("a Task's requester is always registered")
            _check_owner(session, row.task_type, requester, new_owner, "Task.owner")
        updated = service.apply_change(session, row, resource, change, new_owner, now)
        stored = service.served(updated, london_date(now))
        audit_request(session, entities=_entities(updated), patient_id=updated.patient_id,
                      kind=AuditKind.PATCH if request.method == "PATCH" else AuditKind.UPDATE,
                      outcome_desc=change.kind)
    return write_response(stored, 200)


@bp.put("/Task/<resource_id>")
@requires_scope("Task", "u")
def task_update(resource_id: str) -> Response:
    """Change a request (a transition of the table, a note, a clock exception)."""
    data = request_body()
    return _change(resource_id, lambda current: data)


@bp.patch("/Task/<resource_id>")
@requires_scope("Task", "u")
def task_patch(resource_id: str) -> Response:
    """Change a request with a JSON Patch (RFC 6902) of its current version."""
    if request.mimetype != "application/json-patch+json":
        raise FhirError(415, "not-supported", "PATCH bodies must be application/json-patch+json")
    operations = request_body()
    if not isinstance(operations, list):
        raise FhirError(400, "structure", "a JSON Patch is an array of operations")

    def patched(current: dict[str, Any]) -> Any:
        try:
            return jsonpatch.apply_patch(current, operations)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError, ValueError) as error:
            raise FhirError(422, "processing", f"the patch cannot be applied ({type(error).__name__})") from None

    return _change(resource_id, patched)


def _organisation_ids(session: Session, values: list[str], parameter: str) -> list[uuid.UUID | None]:
    """Organisations named by `system|ODS`, a bare ODS code or `Organization/<id>`."""
    found: list[uuid.UUID | None] = []
    for value in values:
        if value.startswith("Organization/"):
            try:
                found.append(uuid.UUID(value.removeprefix("Organization/")))
            except ValueError:
                found.append(None)
            continue
        code = ods_value(value, parameter)
        found.append(session.scalar(select(Organisation.id).where(Organisation.ods == code)))
    return found


def business_status_clause(code: str, today: date) -> Any:
    """SQL for a derived business status on `today` (the same rules as clock_rules)."""
    open_ = TaskRow.status.in_(sorted(OPEN_STATUSES))
    return {
        "overdue": and_(open_, TaskRow.due_date < today),
        "due-soon": and_(open_, TaskRow.due_date >= today, TaskRow.due_date <= today + timedelta(days=DUE_SOON)),
        "on-track": and_(open_, TaskRow.due_date > today + timedelta(days=DUE_SOON)),
        "completed-on-time": and_(TaskRow.status == "completed", TaskRow.completed_on <= TaskRow.due_date),
        "completed-late": and_(TaskRow.status == "completed", TaskRow.completed_on > TaskRow.due_date),
        "closed-without-advice": TaskRow.status.in_(["rejected", "cancelled"]),
    }.get(code, TaskRow.id.is_(None))


def _due_clause(value: str) -> Any:
    bound = parse_date(value, "due")
    low, high = bound.low.astimezone(LONDON).date(), bound.high.astimezone(LONDON).date()
    return {
        "eq": and_(TaskRow.due_date >= low, TaskRow.due_date < high),
        "ge": TaskRow.due_date >= low, "gt": TaskRow.due_date >= high,
        "le": TaskRow.due_date < high, "lt": TaskRow.due_date < low,
    }[bound.prefix]


def task_conditions(session: Session, search: SearchRequest, organisation_id: uuid.UUID, today: date) -> list[Any]:
    """The SQL conditions of a Task search by an organisation (only its own Tasks)."""
    conditions: list[Any] = [
        TaskRow.id.in_(select(TaskParty.task_id).where(TaskParty.organisation_id == organisation_id))
    ]
    params = search.params
    for name, column in (("owner", TaskRow.owner_id), ("requester", TaskRow.requester_id)):
        values = split_values(params.get(name, []) + params.get(f"{name}:identifier", []))
        if values:
            conditions.append(column.in_([i for i in _organisation_ids(session, values, name) if i is not None]))
    patients = split_values(params.get("patient", []))
    if patients:
        conditions.append(TaskRow.patient_id.in_([reference_id(v, "patient", "Patient") for v in patients]))
    numbers = split_values(params.get("patient.identifier", []))
    if numbers:
        conditions.append(TaskRow.patient_id.in_(select(Patient.id).where(
            Patient.nhs_number.in_([nhs_number_value(v, "patient.identifier") for v in numbers]))))
    if "status" in params:
        conditions.append(TaskRow.status.in_([code_value(v, "status", TASK_STATUSES)
                                              for v in split_values(params["status"])]))
    if "code" in params:
        conditions.append(TaskRow.task_type.in_([code_value(v, "code", codes.TaskType, codes.code_system_url("task-type"))
                                                 for v in split_values(params["code"])]))
    if "business-status" in params:
        conditions.append(or_(*(business_status_clause(
            code_value(v, "business-status", codes.TaskBusinessStatus, codes.code_system_url("task-business-status")), today)
            for v in split_values(params["business-status"]))))
    for value in params.get("authored-on", []):
        conditions.append(date_clause(TaskRow.authored_on, parse_date(value, "authored-on")))
    for value in params.get("_lastUpdated", []):
        conditions.append(date_clause(TaskRow.last_updated, parse_date(value, "_lastUpdated")))
    for value in params.get("due", []):
        conditions.append(_due_clause(value))
    return conditions


@bp.get("/Task")
@requires_scope("Task", "s")
def task_search() -> Response:
    """Search the caller's requests (as requester, owner or previous owner)."""
    search = parse_search(SEARCH_PARAMS)
    sort = search.params.pop("_sort", ["-authored-on"])[0]
    moments = {"authored-on": TaskRow.authored_on, "_lastUpdated": TaskRow.last_updated, "date": TaskRow.authored_on,
               "due": TaskRow.due_date}
    if sort.lstrip("-") not in moments:
        raise FhirError(400, "not-supported", "_sort must be authored-on, due or _lastUpdated (with - for descending)")
    today = _today()
    with services().database.transaction() as session:
        conditions = task_conditions(session, search, g.caller.organisation_id, today)
        total = session.scalar(select(func.count()).select_from(TaskRow).where(*conditions)) or 0
        page = keyset_page(session, select(TaskRow).where(*conditions), search, moment=moments[sort.lstrip("-")],
                           tiebreak=TaskRow.id, parse_tiebreak=uuid.UUID, descending=sort.startswith("-"),
                           path="/fhir/Task", sort_name=sort.lstrip("-"),
                           parse_moment=date.fromisoformat if sort.lstrip("-") == "due" else None)
        resources = [service.served(row, today) for row in page.rows]
        audit_request(session)
    return fhir_response(searchset(resources, total, page.self_url, page.next_url, search.ignored_outcome()))

