"""Advice-request use cases: make a request (with its due date), change it, list who takes
part, and serve it with its derived business status."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, Final

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from exchange.advice_requests.clock_rules import business_status, due_date
from exchange.advice_requests.models import TaskParty, TaskRow
from exchange.advice_requests.profile import reason_of, task_type_of, typed_items
from exchange.advice_requests.workflow import OWNER, REQUESTER, Change
from exchange.agreements.models import Organisation
from exchange.clock import LONDON, london_date
from exchange.codes import ODS_SYSTEM, Purpose, TaskInputType, TaskType
from exchange.patients.models import Patient
from exchange.patients.service import TASK_OWNER, TASK_REQUESTER, grant_access
from exchange.versions import instant, keep_version, stamp

PREVIOUS_OWNER: Final = "previous-owner"
#: The purpose each kind of request serves, which the LA and owner's agreement must cover.
PURPOSE_OF: Final = {
    TaskType.EHCNA_HEALTH_ADVICE: Purpose.EHCNA_ADVICE,
    TaskType.DCO_QUALITY_ASSURANCE: Purpose.DCO_QUALITY_ASSURANCE,
    TaskType.TRIBUNAL_HEALTH_RESPONSE: Purpose.TRIBUNAL,
}
#: Which roles may own which kind of request (`access.md`).
OWNER_ROLES: Final = {
    TaskType.EHCNA_HEALTH_ADVICE: frozenset({"provider", "icb"}),
    TaskType.DCO_QUALITY_ASSURANCE: frozenset({"icb"}),
    TaskType.TRIBUNAL_HEALTH_RESPONSE: frozenset({"icb"}),
}


def organisation_reference(organisation: Organisation) -> dict[str, Any]:
    """How the server writes an organisation reference."""
    return {"identifier": {"system": ODS_SYSTEM, "value": organisation.ods}, "display": organisation.name}


def _tribunal_decision(resource: dict[str, Any]) -> date | None:
    for kind, item in typed_items(resource, "input", "task-input-type"):
        if kind == TaskInputType.TRIBUNAL_DECISION_DATE:
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
    session.execute(insert(TaskParty).values(task_id=task_id, organisation_id=organisation_id, role=role)
                    .on_conflict_do_nothing())


def create_task(session: Session, resource: dict[str, Any], patient: Patient, requester: Organisation,
                owner: Organisation, now: datetime) -> TaskRow:
    """Store a new request: the server sets requester, authoredOn, receipt and the due date.
    The owner and requester see the patient from now on (`access.md`)."""
    task_type = task_type_of(resource) or ""
    received = london_date(now)
    due = due_date(task_type, reason_of(resource), received, _given_due(resource), _tribunal_decision(resource))
    task_id = uuid.uuid4()
    body = {k: v for k, v in resource.items() if k not in ("businessStatus", "lastModified")}
    body["requester"] = organisation_reference(requester)
    body["owner"] = organisation_reference(owner)
    body["authoredOn"] = instant(now)
    body["lastModified"] = instant(now)
    body["executionPeriod"] = {"start": receipt_instant(now)}
    body["restriction"] = {**(resource.get("restriction") or {}), "period": {"end": due.isoformat()}}
    stored = stamp(body, task_id, 1, now)
    row = TaskRow(
        id=task_id, patient_id=patient.id, requester_id=requester.id, owner_id=owner.id, task_type=task_type,
        reason=reason_of(resource), status=stored["status"], authored_on=now, received_on=received, due_date=due,
        completed_on=None, clock_exception=False, version=1, last_updated=now, resource=stored,
    )
    session.add(row)
    session.flush()
    keep_version(session, stored, now)
    _add_party(session, task_id, requester.id, REQUESTER)
    _add_party(session, task_id, owner.id, OWNER)
    grant_access(session, patient.id, requester.id, TASK_REQUESTER, now)
    grant_access(session, patient.id, owner.id, TASK_OWNER, now)
    return row


def roles_of(session: Session, task_id: uuid.UUID, organisation_id: uuid.UUID) -> set[str]:
    """The organisation's roles in a Task (empty: no relationship, so 404)."""
    return set(session.scalars(select(TaskParty.role).where(TaskParty.task_id == task_id,
                                                             TaskParty.organisation_id == organisation_id)))


def apply_change(session: Session, row: TaskRow, resource: dict[str, Any], change: Change,
                 new_owner: Organisation | None, now: datetime) -> TaskRow:
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
        session.execute(delete(TaskParty).where(TaskParty.task_id == row.id, TaskParty.role == OWNER))
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
            "coding": [{"system": "https://fhir.send-exchange.example/CodeSystem/task-business-status",
                        "code": status.value}],
            "text": status.value,
        }
    return resource
