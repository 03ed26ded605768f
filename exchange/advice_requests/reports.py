"""Reports over advice requests: the overdue list (the six-week report comes with completion).
"Overdue" is the derived business status, in SQL (`queries.business_status_clause`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session, aliased

from exchange.advice_requests.models import TaskRow
from exchange.advice_requests.queries import business_status_clause
from exchange.agreements.models import Organisation
from exchange.audit.events import Action, Actor, AuditEntry, AuditKind, Outcome
from exchange.audit.service import record
from exchange.clock import london_date
from exchange.codes import LA_CASE_REFERENCE_SYSTEM, TaskBusinessStatus


@dataclass(frozen=True, slots=True)
class OverdueRequest:
    """One open request past its due date."""

    task_id: str
    owner: str
    requester: str
    task_type: str
    status: str
    received: date
    due: date
    days_overdue: int
    case_reference: str


def overdue(
    session: Session,
    today: date,
    owner: str | None = None,
    requester: str | None = None,
    scope: ColumnElement[bool] | None = None,
) -> list[OverdueRequest]:
    """Open requests past their due date on `today`, most overdue first (`scope`: only the
    requests an organisation may report on)."""
    owners, requesters = aliased(Organisation), aliased(Organisation)
    query = (
        select(TaskRow, owners.ods, requesters.ods)
        .join(owners, owners.id == TaskRow.owner_id)
        .join(requesters, requesters.id == TaskRow.requester_id)
        .where(business_status_clause(TaskBusinessStatus.OVERDUE, today))
        .order_by(TaskRow.due_date, TaskRow.id)
    )
    if scope is not None:
        query = query.where(scope)
    if owner:
        query = query.where(owners.ods == owner)
    if requester:
        query = query.where(requesters.ods == requester)
    found = []
    for row, owner_ods, requester_ods in session.execute(query):
        references = [
            i.get("value", "")
            for i in row.resource.get("identifier", [])
            if isinstance(i, dict) and i.get("system") == LA_CASE_REFERENCE_SYSTEM
        ]
        found.append(
            OverdueRequest(
                str(row.id),
                owner_ods,
                requester_ods,
                row.task_type,
                row.status,
                row.received_on,
                row.due_date,
                (today - row.due_date).days,
                references[0] if references else "",
            )
        )
    return found


def overdue_report(
    session: Session, actor: Actor, owner: str | None, requester: str | None, now: datetime
) -> list[OverdueRequest]:
    """The overdue report as an operator runs it (Europe/London date of `now`), audited
    with how many rows it listed."""
    rows = overdue(session, london_date(now), owner, requester)
    record(
        session,
        AuditEntry(
            kind=AuditKind.REPORT,
            action=Action.READ,
            outcome=Outcome.SUCCESS,
            actor=actor,
            details={"report": "overdue", "rows": str(len(rows))},
        ),
        at=now,
    )
    return rows
