"""The purpose a request serves, in Python (`purpose_of`) and in SQL (`purpose_column`, the
document read's query): the same answer for every kind of request and reason."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import literal, select

from exchange.advice_requests.purposes import purpose_column, purpose_of
from exchange.codes import Purpose, Regulation, TaskType
from exchange.db import Database

KINDS = list(itertools.product(TaskType, [None, *Regulation]))


@pytest.mark.parametrize(("task_type", "reason"), KINDS)
def test_sql_gives_the_purpose_python_gives(
    db: Database, task_type: TaskType, reason: Regulation | None
) -> None:
    column = purpose_column(literal(task_type.value), literal(reason, type_=None))
    with db.transaction() as session:
        assert session.scalar(select(column)) == purpose_of(task_type, reason)


def test_an_annual_review_is_read_for_the_annual_review() -> None:
    assert purpose_of(TaskType.EHCNA_HEALTH_ADVICE, Regulation.ANNUAL_REVIEW) is (
        Purpose.ANNUAL_REVIEW
    )
    assert purpose_of(TaskType.EHCNA_HEALTH_ADVICE, Regulation.REG_6_1_C) is Purpose.EHCNA_ADVICE
