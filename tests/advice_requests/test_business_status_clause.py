"""The business status exists once as a rule (`clock_rules.business_status`) and once as SQL
(`queries.business_status_clause`, for searching and the overdue report): for Tasks in every
R4 status with due dates around `today` (and completions before, on and after them, or
without a date), the clause finds exactly the Tasks the rule gives that status, on both
databases."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from exchange.advice_requests.clock_rules import DUE_SOON, business_status
from exchange.advice_requests.models import TaskRow
from exchange.advice_requests.profile import TASK_STATUSES
from exchange.advice_requests.queries import business_status_clause
from exchange.codes import TaskBusinessStatus
from exchange.db import Database
from exchange.patients.models import Patient
from tests.factories import make_organisation, nhs_number

TODAY = date(2026, 11, 23)
#: Due dates from before `today` to after the due-soon window.
DUE_OFFSETS = range(-DUE_SOON - 3, DUE_SOON + 4)
#: A completion before, on and after the due date, and one without its date.
COMPLETION_OFFSETS = (-1, 0, 1, None)


def _rows(organisation: uuid.UUID, patient: uuid.UUID, today: date) -> list[TaskRow]:
    now = datetime(2026, 10, 1, 9, tzinfo=UTC)
    rows = []
    for status in sorted(TASK_STATUSES):
        for offset in DUE_OFFSETS:
            due = today + timedelta(days=offset)
            completions = COMPLETION_OFFSETS if status == "completed" else (None,)
            for completed in completions:
                rows.append(
                    TaskRow(
                        id=uuid.uuid4(),
                        patient_id=patient,
                        requester_id=organisation,
                        owner_id=organisation,
                        task_type="ehcna-health-advice",
                        reason="6-1-c",
                        status=status,
                        authored_on=now,
                        received_on=now.date(),
                        due_date=due,
                        completed_on=due + timedelta(days=completed)
                        if completed is not None
                        else None,
                        clock_exception=False,
                        version=1,
                        last_updated=now,
                        resource={"resourceType": "Task"},
                    )
                )
    return rows


def _matching(session: Session, status: TaskBusinessStatus, today: date) -> set[uuid.UUID]:
    return set(session.scalars(select(TaskRow.id).where(business_status_clause(status, today))))


# Across a month end, a year end and the clock changes (dates, not instants, decide).
@pytest.mark.parametrize(
    "today", [TODAY, date(2026, 12, 31), date(2027, 3, 28), date(2026, 10, 25)]
)
def test_the_clause_finds_what_the_rule_derives(db: Database, today: date) -> None:
    organisation = make_organisation(db, "PRV66")
    with db.transaction() as session:
        patient = Patient(id=uuid.uuid4(), nhs_number=nhs_number(6601), birth_date=date(2015, 3, 2))
        session.add(patient)
        session.flush()
        rows = _rows(organisation, patient.id, today)
        session.add_all(rows)
        session.flush()
        derived = {
            row.id: business_status(row.status, row.due_date, today, row.completed_on)
            for row in rows
        }
        for status in TaskBusinessStatus:
            expected = {task_id for task_id, found in derived.items() if found == status}
            assert _matching(session, status, today) == expected, status
        # Every status is exercised, and a Task outside the workflow has none in SQL either.
        assert set(derived.values()) == {*TaskBusinessStatus, None}
