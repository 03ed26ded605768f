"""Finding advice requests (`advice-requests.md`, Search): an organisation finds only the
Tasks it takes part in (as requester, owner or previous owner). The same filters serve the
Task API, the console's work lists and the reports.

`business_status_clause` is the SQL twin of `clock_rules.business_status`: the derived
status is never stored, so searching by it must say the same rule in SQL. A test holds the
two together (tests/advice_requests/test_business_status_clause.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any, Final, Literal

from sqlalchemy import ColumnElement, Select, and_, exists, false, or_, select
from sqlalchemy.orm import Session

from exchange.advice_requests.clock_rules import CLOSED_WITHOUT_ADVICE, DUE_SOON, OPEN_STATUSES
from exchange.advice_requests.models import TaskParty, TaskRow
from exchange.agreements.models import Organisation
from exchange.codes import TaskBusinessStatus
from exchange.patients.models import Patient
from exchange.search import DateRange

#: An organisation as a search names it: its id, or its ODS code.
OrganisationKey = uuid.UUID | str
#: The orders a Task search can be sorted in.
TaskOrder = Literal["authored", "last-updated", "due"]
ORDER_COLUMNS: Final[dict[str, Any]] = {
    "authored": TaskRow.authored_on,
    "last-updated": TaskRow.last_updated,
    "due": TaskRow.due_date,
}


@dataclass(frozen=True, slots=True)
class TaskFilters:
    """What to find: each field narrows, values within a field are alternatives. None:
    the field does not narrow; an empty sequence: nothing matches it."""

    patient_ids: Sequence[uuid.UUID] | None = None
    nhs_numbers: Sequence[str] | None = None
    owners: Sequence[OrganisationKey] | None = None
    requesters: Sequence[OrganisationKey] | None = None
    #: R4 task statuses.
    statuses: Sequence[str] | None = None
    #: task-type codes.
    codes: Sequence[str] | None = None
    business_statuses: Sequence[TaskBusinessStatus] | None = None
    authored: Sequence[DateRange] = ()
    last_updated: Sequence[DateRange] = ()
    #: Ranges of the (London) due date.
    due: Sequence[DateRange] = ()


def business_status_clause(status: TaskBusinessStatus, today: date) -> ColumnElement[bool]:
    """The Tasks whose derived business status on `today` is `status`: the rules of
    `clock_rules.business_status`, in SQL."""
    open_ = TaskRow.status.in_(sorted(OPEN_STATUSES))
    completed = TaskRow.status == "completed"
    soon = today + timedelta(days=DUE_SOON)
    clauses: dict[TaskBusinessStatus, ColumnElement[bool]] = {
        TaskBusinessStatus.OVERDUE: and_(open_, TaskRow.due_date < today),
        TaskBusinessStatus.DUE_SOON: and_(
            open_, TaskRow.due_date >= today, TaskRow.due_date <= soon
        ),
        TaskBusinessStatus.ON_TRACK: and_(open_, TaskRow.due_date > soon),
        TaskBusinessStatus.COMPLETED_ON_TIME: and_(
            completed, TaskRow.completed_on <= TaskRow.due_date
        ),
        # A completion without its date is not known to be on time, so it is late.
        TaskBusinessStatus.COMPLETED_LATE: and_(
            completed, or_(TaskRow.completed_on.is_(None), TaskRow.completed_on > TaskRow.due_date)
        ),
        TaskBusinessStatus.CLOSED_WITHOUT_ADVICE: TaskRow.status.in_(sorted(CLOSED_WITHOUT_ADVICE)),
    }
    return clauses[status]


def taking_part(organisation_id: uuid.UUID) -> ColumnElement[bool]:
    """The Tasks the organisation takes part in (requester, owner or previous owner): a
    probe of the task_party key per Task, so a page of an organisation's work list costs
    the same however many Tasks it has taken part in (`IN (SELECT …)` hashed all of them
    first: bench/national.py)."""
    return exists().where(
        TaskParty.task_id == TaskRow.id, TaskParty.organisation_id == organisation_id
    )


def _organisation_clause(column: Any, keys: Sequence[OrganisationKey]) -> ColumnElement[bool]:
    ids = [key for key in keys if isinstance(key, uuid.UUID)]
    ods_codes = [key for key in keys if isinstance(key, str)]
    alternatives: list[ColumnElement[bool]] = []
    if ids:
        alternatives.append(column.in_(ids))
    if ods_codes:
        alternatives.append(
            column.in_(select(Organisation.id).where(Organisation.ods.in_(ods_codes)))
        )
    return or_(*alternatives) if alternatives else false()


def with_organisation_ids(session: Session, filters: TaskFilters) -> TaskFilters:
    """`filters` with the owners and requesters given by ODS code resolved to their ids
    first (an unknown code matches nothing), so the search filters `owner_id = :id` and the
    (owner_id, status, authored_on, id) index gives a page in order without sorting every
    match (bench/national.py: 24,000 matches sorted for a page of 20 at 10% scale)."""
    wanted = [
        key
        for keys in (filters.owners or (), filters.requesters or ())
        for key in keys
        if isinstance(key, str)
    ]
    if not wanted:
        return filters
    ids: dict[str, uuid.UUID] = dict(
        session.execute(
            select(Organisation.ods, Organisation.id).where(Organisation.ods.in_(wanted))
        ).all()
    )

    def resolved(keys: Sequence[OrganisationKey] | None) -> list[OrganisationKey] | None:
        if keys is None:
            return None
        return [
            ids[key] if isinstance(key, str) else key
            for key in keys
            if key in ids or isinstance(key, uuid.UUID)
        ]

    return replace(
        filters, owners=resolved(filters.owners), requesters=resolved(filters.requesters)
    )


def _any_of(clauses: list[ColumnElement[bool]]) -> ColumnElement[bool]:
    return or_(*clauses) if clauses else false()


def conditions(filters: TaskFilters, today: date) -> list[ColumnElement[bool]]:
    """The SQL conditions of `filters`, the business status as it is on `today`."""
    clauses: list[ColumnElement[bool]] = []
    if filters.owners is not None:
        clauses.append(_organisation_clause(TaskRow.owner_id, filters.owners))
    if filters.requesters is not None:
        clauses.append(_organisation_clause(TaskRow.requester_id, filters.requesters))
    if filters.patient_ids is not None:
        clauses.append(TaskRow.patient_id.in_(list(filters.patient_ids)))
    if filters.nhs_numbers is not None:
        clauses.append(
            TaskRow.patient_id.in_(
                select(Patient.id).where(Patient.nhs_number.in_(list(filters.nhs_numbers)))
            )
        )
    if filters.statuses is not None:
        clauses.append(TaskRow.status.in_(list(filters.statuses)))
    if filters.codes is not None:
        clauses.append(TaskRow.task_type.in_(list(filters.codes)))
    if filters.business_statuses is not None:
        clauses.append(
            _any_of([business_status_clause(status, today) for status in filters.business_statuses])
        )
    clauses += [bound.clause(TaskRow.authored_on) for bound in filters.authored]
    clauses += [bound.clause(TaskRow.last_updated) for bound in filters.last_updated]
    clauses += [bound.date_clause(TaskRow.due_date) for bound in filters.due]
    return clauses


def tasks_of(organisation_id: uuid.UUID, filters: TaskFilters, today: date) -> Select[TaskRow]:
    """The Tasks `organisation_id` takes part in that match `filters` on `today`.

    A work list (the caller's own Tasks as owner, or as requester) needs no check that the
    caller takes part: a Task's owner and requester are always among its parties (the use
    cases add them with the Task and move the owner's row when it is forwarded). Asking
    anyway cost a hash of every Task the organisation ever took part in, whatever the
    list's length (bench/RESULTS.md, national scale)."""
    own_list = [organisation_id] in (list(filters.owners or ()), list(filters.requesters or ()))
    conditions_ = conditions(filters, today)
    if own_list:
        return select(TaskRow).where(*conditions_)
    return select(TaskRow).where(taking_part(organisation_id), *conditions_)
