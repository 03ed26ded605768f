"""The purpose each kind of advice request serves (`advice-requests.md`): the LA and the
owner's agreement must cover it, and the request's documents are read under it."""

from __future__ import annotations

from typing import Final

from sqlalchemy import ColumnElement, SQLColumnExpression, and_, case

from exchange.codes import Purpose, Regulation, TaskType

#: The purpose of each kind of request (an annual review's: see `purpose_of`).
PURPOSE_OF: Final = {
    TaskType.EHCNA_HEALTH_ADVICE: Purpose.EHCNA_ADVICE,
    TaskType.DCO_QUALITY_ASSURANCE: Purpose.DCO_QUALITY_ASSURANCE,
    TaskType.TRIBUNAL_HEALTH_RESPONSE: Purpose.TRIBUNAL,
}


def purpose_of(task_type: str, reason: str | None) -> Purpose:
    """The purpose a request serves: health advice asked for an annual review serves the
    annual review (SEND Regulations 2014 reg 20), not an EHC needs assessment."""
    if task_type == TaskType.EHCNA_HEALTH_ADVICE and reason == Regulation.ANNUAL_REVIEW:
        return Purpose.ANNUAL_REVIEW
    return PURPOSE_OF[TaskType(task_type)]


def purpose_column(
    task_type: SQLColumnExpression[str], reason: SQLColumnExpression[str | None]
) -> ColumnElement[str]:
    """`purpose_of` in SQL, for a query that looks up what the purpose decides along with
    the Task (a document read's agreement); a test holds the two to the same answers."""
    return case(
        (
            and_(
                task_type == TaskType.EHCNA_HEALTH_ADVICE.value,
                reason == Regulation.ANNUAL_REVIEW.value,
            ),
            Purpose.ANNUAL_REVIEW.value,
        ),
        *((task_type == kind.value, purpose.value) for kind, purpose in PURPOSE_OF.items()),
    )
