"""The statutory clock (`advice-requests.md`): due dates and the derived business status.
Pure functions over dates; the Europe/London calendar date of an instant decides.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Final

from exchange.codes import Regulation, TaskBusinessStatus, TaskType
from exchange.errors import Invalid, Issue

#: SEND Regulations 2014 reg 8(1): advice within 6 weeks of the date the request is received.
SIX_WEEKS: Final = timedelta(days=42)
#: Local policy for DCO quality assurance of draft plans (configurable per deployment later).
DCO_QA_DAYS: Final = timedelta(days=15)
#: A tribunal's health response: within 5 weeks of the day the LA received the tribunal's
#: final order (as the seeds' DCO practice counts it).
TRIBUNAL_DAYS: Final = timedelta(days=35)
#: "due-soon": 7 days or fewer left.
DUE_SOON: Final = 7

OPEN_STATUSES: Final = frozenset({"requested", "accepted", "in-progress"})
CLOSED_WITHOUT_ADVICE: Final = frozenset({"rejected", "cancelled"})


class DueDateError(Invalid):
    """The request lacks what its due date needs (an annual review's date): a problem at
    `Task.restriction.period.end`."""

    def __init__(self, message: str) -> None:
        super().__init__([Issue("error", "required", message, ("Task.restriction.period.end",))])


def due_date(
    task_type: str,
    reason: str | None,
    received: date,
    given: date | None = None,
    tribunal_order_received: date | None = None,
) -> date:
    """The due date of a request received on `received` (London date)."""
    if task_type == TaskType.EHCNA_HEALTH_ADVICE:
        if reason == Regulation.ANNUAL_REVIEW:
            # The LA sets it: before the annual review meeting (SEND Regulations 2014 reg 20).
            if given is None:
                raise DueDateError(
                    "an annual-review request needs its due date in restriction.period.end"
                )
            return given
        return received + SIX_WEEKS
    if task_type == TaskType.DCO_QUALITY_ASSURANCE:
        default = received + DCO_QA_DAYS
        return min(given, default) if given is not None else default
    if task_type == TaskType.TRIBUNAL_HEALTH_RESPONSE:
        return (tribunal_order_received or received) + TRIBUNAL_DAYS
    raise DueDateError(f"unknown task type {task_type!r}")


def business_status(
    status: str, due: date, today: date, completed_on: date | None
) -> TaskBusinessStatus | None:
    """The derived business status of a Task on `today` (None for a status outside the
    workflow)."""
    if status == "completed":
        on_time = completed_on is not None and completed_on <= due
        return (
            TaskBusinessStatus.COMPLETED_ON_TIME if on_time else TaskBusinessStatus.COMPLETED_LATE
        )
    if status in CLOSED_WITHOUT_ADVICE:
        return TaskBusinessStatus.CLOSED_WITHOUT_ADVICE
    if status not in OPEN_STATUSES:
        return None
    if today > due:
        return TaskBusinessStatus.OVERDUE
    if (due - today).days <= DUE_SOON:
        return TaskBusinessStatus.DUE_SOON
    return TaskBusinessStatus.ON_TRACK
