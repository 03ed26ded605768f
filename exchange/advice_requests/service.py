"""Advice-request use cases (`advice-requests.md`): an LA makes a request (its due date set
by the statutory clock), the parties read it, change it through the transition table, and
find their requests; each use case is audited.

Every use case takes the session of the one transaction its front door opened, the
`Caller` and the current instant; it decides in the spec's order (404, 412, 422, 403) and
raises a domain error, or writes and returns the Task as served (with its business status
derived for the day). Below them, the storage steps (`store_task`, `apply_change`,
`served`) that the use cases and the reports share.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

import jsonpatch
from sqlalchemy import and_, bindparam, delete, exists, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from exchange.advice_requests.clock_rules import business_status, due_date
from exchange.advice_requests.models import TaskParty, TaskRow
from exchange.advice_requests.profile import (
    ods_of,
    reason_of,
    status_reason_of,
    task_profile_issues,
    task_type_of,
    typed_items,
)
from exchange.advice_requests.purposes import purpose_of
from exchange.advice_requests.queries import (
    ORDER_COLUMNS,
    TaskFilters,
    TaskOrder,
    tasks_of,
    with_organisation_ids,
)
from exchange.advice_requests.workflow import (
    OWNER,
    REQUESTER,
    Change,
    DocumentLookup,
    NotYourChange,
    check_change,
)
from exchange.agreements.models import Organisation
from exchange.agreements.queries import agreement_between
from exchange.agreements.resources import organisation_reference
from exchange.audit.events import AuditKind, Entity
from exchange.audit.service import record
from exchange.caller import Caller
from exchange.clock import LONDON, london_date
from exchange.codes import (
    AccessDenialReason,
    TaskInputType,
    TaskType,
    code_system_url,
)
from exchange.db import Prepared, core_connection
from exchange.errors import (
    AccessDenied,
    Forbidden,
    Invalid,
    Issue,
    Malformed,
    NotFound,
    Problems,
    Subject,
    invalid,
)
from exchange.fhir.validation import validate_resource
from exchange.patients.models import Patient, PatientAccess
from exchange.patients.service import TASK_OWNER, TASK_REQUESTER, grant_access, visible_patient
from exchange.search import Found, Paging, keyset_page, parse_instant
from exchange.versions import (
    all_versions,
    check_version,
    instant,
    keep_version,
    read_version,
    stamp,
)

PREVIOUS_OWNER: Final = "previous-owner"
#: Which roles may own which kind of request (`access.md`).
OWNER_ROLES: Final = {
    TaskType.EHCNA_HEALTH_ADVICE: frozenset({"provider", "icb"}),
    TaskType.DCO_QUALITY_ASSURANCE: frozenset({"icb"}),
    TaskType.TRIBUNAL_HEALTH_RESPONSE: frozenset({"icb"}),
}


def _tribunal_order_received(resource: dict[str, Any]) -> date | None:
    """The day the LA received the tribunal's final order (`tribunal-order-received`, or
    its former name `tribunal-decision-date`, read as the same date)."""
    for kind, item in typed_items(resource, "input", "task-input-type"):
        if kind in (TaskInputType.TRIBUNAL_ORDER_RECEIVED, TaskInputType.TRIBUNAL_DECISION_DATE):
            return date.fromisoformat(item["valueDate"])
    return None


def _given_due(resource: dict[str, Any]) -> date | None:
    end = ((resource.get("restriction") or {}).get("period") or {}).get("end")
    return date.fromisoformat(end[:10]) if isinstance(end, str) else None


def receipt_instant(now: datetime) -> str:
    """`executionPeriod.start`: the moment of receipt with its Europe/London offset."""
    return now.astimezone(LONDON).isoformat(timespec="seconds")


def _add_party(session: Session, task_id: uuid.UUID, organisation_id: uuid.UUID, role: str) -> None:
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(
        insert(TaskParty)
        .values(task_id=task_id, organisation_id=organisation_id, role=role)
        .on_conflict_do_nothing()
    )


def store_task(
    session: Session,
    resource: dict[str, Any],
    patient: Patient,
    requester: Organisation,
    owner: Organisation,
    now: datetime,
) -> TaskRow:
    """Store a new (checked) request: the server sets requester, authoredOn, receipt and the
    due date (DueDateError if the request lacks what it needs). The owner and requester see
    the patient from now on (`access.md`)."""
    task_type = task_type_of(resource) or ""
    received = london_date(now)
    due = due_date(
        task_type,
        reason_of(resource),
        received,
        _given_due(resource),
        _tribunal_order_received(resource),
    )
    task_id = uuid.uuid4()
    body = {k: v for k, v in resource.items() if k not in ("businessStatus", "lastModified")}
    body["requester"] = organisation_reference(requester)
    body["owner"] = organisation_reference(owner)
    body["authoredOn"] = instant(now)
    body["lastModified"] = instant(now)
    body["executionPeriod"] = {"start": receipt_instant(now)}
    body["restriction"] = {
        **(resource.get("restriction") or {}),
        "period": {"end": due.isoformat()},
    }
    stored = stamp(body, task_id, 1, now)
    row = TaskRow(
        id=task_id,
        patient_id=patient.id,
        requester_id=requester.id,
        owner_id=owner.id,
        task_type=task_type,
        reason=reason_of(resource),
        status=stored["status"],
        authored_on=now,
        received_on=received,
        due_date=due,
        completed_on=None,
        closed_on=None,
        status_reason=None,
        forwarded=False,
        clock_exception=False,
        version=1,
        last_updated=now,
        resource=stored,
    )
    session.add(row)
    session.flush()
    keep_version(session, stored, now)
    _add_party(session, task_id, requester.id, REQUESTER)
    _add_party(session, task_id, owner.id, OWNER)
    grant_access(session, patient.id, requester.id, TASK_REQUESTER, now)
    grant_access(session, patient.id, owner.id, TASK_OWNER, now)
    return row


_ROLES: Final = select(TaskParty.role).where(
    TaskParty.task_id == bindparam("task_id"),
    TaskParty.organisation_id == bindparam("organisation_id"),
)


def roles_of(session: Session, task_id: uuid.UUID, organisation_id: uuid.UUID) -> set[str]:
    """The organisation's roles in a Task (empty: no relationship, so 404)."""
    return set(session.scalars(_ROLES, {"task_id": task_id, "organisation_id": organisation_id}))


#: The Task's patient, the organisation's roles in it, the organisation's name (a
#: document's custodian reference names it) and whether it may see the patient a request
#: names: one row per role, one with no role if it has none.
_PATIENT_AND_ROLES: Final = Prepared(
    select(
        TaskRow.patient_id,
        TaskParty.role,
        select(Organisation.name)
        .where(Organisation.id == bindparam("organisation_id"))
        .scalar_subquery(),
        exists()
        .where(
            PatientAccess.patient_id == bindparam("patient_id"),
            PatientAccess.organisation_id == bindparam("organisation_id"),
        )
        .label("sees_patient"),
    )
    .outerjoin(
        TaskParty,
        and_(
            TaskParty.task_id == TaskRow.id,
            TaskParty.organisation_id == bindparam("organisation_id"),
        ),
    )
    .where(TaskRow.id == bindparam("task_id"))
)


@dataclass(frozen=True, slots=True)
class TaskPart:
    """Which patient a Task is for, and an organisation's part in it."""

    patient_id: uuid.UUID
    roles: frozenset[str]
    #: The organisation's registered name.
    organisation_name: str
    #: Whether the organisation may see the patient asked about (`patients.service`).
    sees_patient: bool


def patient_and_roles(
    session: Session,
    task_id: uuid.UUID,
    organisation_id: uuid.UUID,
    patient_id: uuid.UUID | None = None,
) -> TaskPart | None:
    """A Task's patient and the organisation's roles in it (its name, and whether it may
    see `patient_id`), in one query on the session's connection (a document upload asks
    it: bench/profiles/api-load.md); None if there is no such Task."""
    rows = _PATIENT_AND_ROLES.rows(
        core_connection(session),
        {"task_id": task_id, "organisation_id": organisation_id, "patient_id": patient_id},
    )
    if not rows:
        return None
    roles = frozenset(row[1] for row in rows if row[1] is not None)
    task_patient, _, name, sees = rows[0]
    return TaskPart(task_patient, roles, name, bool(sees))


def apply_change(
    session: Session,
    row: TaskRow,
    resource: dict[str, Any],
    change: Change,
    new_owner: Organisation | None,
    now: datetime,
) -> TaskRow:
    """Store the next version after an accepted change (checked by `workflow`)."""
    body = {k: v for k, v in resource.items() if k not in ("businessStatus",)}
    current = row.resource
    # What the server manages stays the server's, whatever the client sent.
    for key in ("requester", "authoredOn", "restriction", "for", "code", "intent", "text"):
        body.pop(key, None)
        if key in current:
            body[key] = current[key]
    body["lastModified"] = instant(now)
    period = dict(current.get("executionPeriod") or {})
    if change.closes:
        period["end"] = receipt_instant(now)
    body["executionPeriod"] = period
    if new_owner is not None:
        _add_party(session, row.id, row.owner_id, PREVIOUS_OWNER)
        session.execute(
            delete(TaskParty).where(TaskParty.task_id == row.id, TaskParty.role == OWNER)
        )
        _add_party(session, row.id, new_owner.id, OWNER)
        grant_access(session, row.patient_id, new_owner.id, TASK_OWNER, now)
        row.owner_id = new_owner.id
        body["owner"] = organisation_reference(new_owner)
    else:
        body["owner"] = current["owner"]
    row.version += 1
    stored = stamp(body, row.id, row.version, now)
    row.resource = stored
    row.status = stored["status"]
    row.clock_exception = row.clock_exception or change.clock_exception
    if change.kind == "complete":
        row.completed_on = london_date(now)
    if change.closes:
        row.closed_on = london_date(now)
    if change.kind != "annotate":
        row.status_reason = status_reason_of(stored)
    if new_owner is not None:
        row.forwarded = True
    row.last_updated = now
    keep_version(session, stored, now)
    return row


def served(row: TaskRow, today: date) -> dict[str, Any]:
    """The Task as served: the stored version with `businessStatus` derived for `today`
    (never stored, so it is never stale and does not change `meta.versionId`)."""
    resource = dict(row.resource)
    status = business_status(row.status, row.due_date, today, row.completed_on)
    if status is not None:
        resource["businessStatus"] = {
            "coding": [{"system": code_system_url("task-business-status"), "code": status.value}],
            "text": status.value,
        }
    return resource


# --- use cases ------------------------------------------------------------------------------


def _entities(row: TaskRow) -> tuple[Entity, ...]:
    return (Entity(f"Task/{row.id}"), Entity(f"Patient/{row.patient_id}", "patient"))


def _audit(
    session: Session,
    caller: Caller,
    kind: AuditKind,
    row: TaskRow,
    now: datetime,
    outcome_desc: str | None = None,
) -> None:
    """Record the caller's `kind` of interaction with the Task."""
    record(
        session,
        caller.audit_entry(
            kind, entities=_entities(row), patient_id=row.patient_id, outcome_desc=outcome_desc
        ),
        at=now,
    )


def _subject(row: TaskRow) -> Subject:
    """What a refusal of a change concerned: the caller takes part in the Task, so naming
    it in the audit record tells them nothing new."""
    return Subject(entities=_entities(row), patient_id=row.patient_id)


def _registered(session: Session, ods: str | None, expression: str) -> Organisation:
    """The registered organisation with this ODS code (422 at `expression` if none)."""
    organisation = None
    if ods:
        organisation = session.scalars(select(Organisation).where(Organisation.ods == ods)).first()
    if organisation is None:
        raise invalid(expression, f"{expression} is not a registered organisation", "value")
    return organisation


def _check_owner(
    session: Session,
    task_type: str,
    reason: str | None,
    requester: Organisation,
    owner: Organisation,
    today: date,
    subject: Subject,
) -> None:
    """The owner's role fits the kind of request (422), and the LA and the owner share an
    agreement in force for its purpose (403 no-agreement): on creation and on forwarding."""
    kind = TaskType(task_type)
    if owner.role not in OWNER_ROLES.get(kind, frozenset()):
        raise invalid("Task.owner", f"a {task_type} request cannot be owned by a {owner.role}")
    purpose = purpose_of(task_type, reason)
    if agreement_between(session, requester.id, owner.id, purpose.value, today) is None:
        raise AccessDenied(
            AccessDenialReason.NO_AGREEMENT,
            f"no data-sharing agreement in force covers {purpose.value} "
            f"between the LA and {owner.ods}",
            subject=subject,
        )


def _named_patient(session: Session, caller: Caller, data: dict[str, Any]) -> Patient | None:
    """The Patient `Task.for` names, if it names one; NotFound if the caller cannot see it,
    before the resource is validated (the spec answers 404 before 422)."""
    subject = data.get("for")
    reference = subject.get("reference") if isinstance(subject, dict) else None
    if not isinstance(reference, str) or not reference.startswith("Patient/"):
        return None
    try:
        patient_id = uuid.UUID(reference.removeprefix("Patient/"))
    except ValueError:
        raise NotFound("Patient", reference.removeprefix("Patient/")) from None
    patient = visible_patient(session, patient_id, caller.organisation_id)
    if patient is None:
        raise NotFound("Patient", reference.removeprefix("Patient/"))
    return patient


def create_task(session: Session, caller: Caller, data: Any, now: datetime) -> dict[str, Any]:
    """An LA asks a provider or the ICB for advice: the statutory clock starts now. Only an
    LA may ask (403), of an owner whose role fits the request (422) and with whom it shares
    an agreement for the request's purpose (403 no-agreement)."""
    if not isinstance(data, dict) or data.get("resourceType") != "Task":
        validate_resource(data, "Task", task_profile_issues)  # Malformed: not a Task at all
    patient = _named_patient(session, caller, data)
    resource = validate_resource(data, "Task", task_profile_issues)
    problems = Problems()
    if resource["status"] != "requested":
        problems.add("Task.status", "a new request has status requested", "value")
    requester = session.get(Organisation, caller.organisation_id)
    if requester is None:
        raise RuntimeError("the caller's organisation is not registered")
    given = ods_of(resource.get("requester")) if "requester" in resource else requester.ods
    if given != requester.ods:
        problems.add(
            "Task.requester",
            "Task.requester is set by the server to the caller's organisation",
            "value",
        )
    problems.raise_any()
    owner = _registered(session, ods_of(resource.get("owner")), "Task.owner")
    if patient is None:
        raise NotFound("Patient")
    subject = Subject(entities=(Entity(f"Patient/{patient.id}", "patient"),), patient_id=patient.id)
    if requester.role != "la":
        raise Forbidden("only a local authority may request advice", subject=subject)
    today = london_date(now)
    _check_owner(
        session, task_type_of(resource) or "", reason_of(resource), requester, owner, today, subject
    )
    row = store_task(session, resource, patient, requester, owner, now)
    _audit(session, caller, AuditKind.CREATE, row, now)
    return served(row, today)


def _visible_task(
    session: Session, caller: Caller, task_id: uuid.UUID, lock: bool = False
) -> tuple[TaskRow, set[str]]:
    """The Task and the caller's roles in it; NotFound if it takes no part (the same answer
    as for a Task that does not exist)."""
    row = session.get(TaskRow, task_id, with_for_update=lock)
    roles = roles_of(session, task_id, caller.organisation_id) if row is not None else set()
    if row is None or not roles:
        raise NotFound("Task", task_id)
    return row, roles


def read_task(
    session: Session, caller: Caller, task_id: uuid.UUID, now: datetime
) -> dict[str, Any]:
    """A request the caller's organisation takes part in, with its business status today."""
    row, _ = _visible_task(session, caller, task_id)
    _audit(session, caller, AuditKind.READ, row, now)
    return served(row, london_date(now))


def read_task_version(
    session: Session, caller: Caller, task_id: uuid.UUID, version: int | None, now: datetime
) -> dict[str, Any]:
    """One version of a request, as it was stored."""
    row, _ = _visible_task(session, caller, task_id)
    stored = read_version(session, "Task", row.id, version)
    if stored is None:
        raise NotFound("Task", f"{task_id}/_history/{version}")
    _audit(session, caller, AuditKind.VREAD, row, now)
    return stored


def task_history(
    session: Session, caller: Caller, task_id: uuid.UUID, now: datetime
) -> list[dict[str, Any]]:
    """Every version of a request, newest first."""
    row, _ = _visible_task(session, caller, task_id)
    _audit(session, caller, AuditKind.HISTORY, row, now)
    return all_versions(session, "Task", row.id)


def change_task(
    session: Session,
    caller: Caller,
    task_id: uuid.UUID,
    data: Any,
    if_match: str | None,
    documents: DocumentLookup,
    now: datetime,
) -> dict[str, Any]:
    """Change a request to `data` (a transition of the table, a note, a clock exception,
    forwarding): 404 -> 412 -> 422 -> 403, then the next version. `documents` looks up the
    DocumentReferences the Task's outputs point at (`documents.task_outputs`)."""
    return _change(
        session, caller, task_id, lambda current: data, if_match, AuditKind.UPDATE, documents, now
    )


def patch_task(
    session: Session,
    caller: Caller,
    task_id: uuid.UUID,
    operations: Any,
    if_match: str | None,
    documents: DocumentLookup,
    now: datetime,
) -> dict[str, Any]:
    """Change a request with a JSON Patch (RFC 6902) of its current version: the patched
    resource then takes the path of `change_task`."""
    if not isinstance(operations, list):
        raise Malformed("a JSON Patch is an array of operations")
    return _change(
        session,
        caller,
        task_id,
        lambda current: apply_json_patch(current, operations),
        if_match,
        AuditKind.PATCH,
        documents,
        now,
    )


def apply_json_patch(current: dict[str, Any], operations: list[Any]) -> Any:
    """`current` with the JSON Patch `operations` applied (Invalid if they cannot be)."""
    try:
        return jsonpatch.apply_patch(current, operations)
    except (
        jsonpatch.JsonPatchException,
        jsonpatch.JsonPointerException,
        TypeError,
        ValueError,
    ) as error:
        raise Invalid(
            [Issue("error", "processing", f"the patch cannot be applied ({type(error).__name__})")]
        ) from None


def _change(
    session: Session,
    caller: Caller,
    task_id: uuid.UUID,
    revise: Callable[[dict[str, Any]], Any],
    if_match: str | None,
    kind: AuditKind,
    documents: DocumentLookup,
    now: datetime,
) -> dict[str, Any]:
    """The one path of every change: the Task (locked), its version, the new resource
    `revise` makes of the current one, the workflow's decision, the next version."""
    row, roles = _visible_task(session, caller, task_id, lock=True)
    check_version(row.version, if_match)
    resource = validate_resource(revise(copy.deepcopy(row.resource)), "Task", task_profile_issues)
    if resource.get("id") not in (None, str(row.id)):
        raise invalid("Task.id", "the resource id does not match the URL", "invariant")
    subject = _subject(row)
    try:
        change = check_change(row.resource, resource, roles, str(row.id), documents)
    except NotYourChange as refused:
        raise NotYourChange(refused.message, subject=subject) from None
    today = london_date(now)
    new_owner = None
    if change.new_owner is not None:
        new_owner = _registered(session, change.new_owner, "Task.owner")
        requester = session.get(Organisation, row.requester_id)
        if requester is None:
            raise RuntimeError("a Task's requester is always registered")
        _check_owner(session, row.task_type, row.reason, requester, new_owner, today, subject)
    updated = apply_change(session, row, resource, change, new_owner, now)
    _audit(session, caller, kind, updated, now, outcome_desc=change.kind)
    return served(updated, today)


def search_tasks(
    session: Session,
    caller: Caller,
    filters: TaskFilters,
    order: TaskOrder,
    paging: Paging,
    query: str | None,
    now: datetime,
) -> Found:
    """The caller's requests (as requester, owner or previous owner) matching `filters`,
    with their business status as it is today, in `order` (newest first unless told)."""
    today = london_date(now)
    wanted = tasks_of(caller.organisation_id, with_organisation_ids(session, filters), today)
    total = session.scalar(select(func.count()).select_from(wanted.subquery())) or 0
    page = keyset_page(
        session,
        wanted,
        paging,
        moment=ORDER_COLUMNS[order],
        tiebreak=TaskRow.id,
        parse_moment=date.fromisoformat if order == "due" else parse_instant,
        parse_tiebreak=uuid.UUID,
    )
    record(session, caller.audit_entry(AuditKind.SEARCH, query=query), at=now)
    return Found([served(row, today) for row in page.rows], total, page.next)
