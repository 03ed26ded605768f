"""Due dates and business status as pure rules, across month ends and the clock changes."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from exchange.advice_requests.clock_rules import DueDateError, business_status, due_date
from exchange.clock import london_date


@pytest.mark.parametrize(
    ("received", "due"),
    [
        (date(2026, 1, 31), date(2026, 3, 14)),
        (date(2026, 12, 31), date(2027, 2, 11)),
        (date(2028, 1, 20), date(2028, 3, 2)),
        (date(2026, 3, 20), date(2026, 5, 1)),
    ],
)
def test_six_weeks_from_receipt(received: date, due: date) -> None:
    assert due_date("ehcna-health-advice", "6-1-c", received) == due


def test_receipt_is_the_london_date_across_the_clock_changes() -> None:
    # 23:30 UTC on 28 March 2026 is 23:30 GMT (still the 28th); on 29 March BST begins.
    assert london_date(datetime(2026, 3, 28, 23, 30, tzinfo=UTC)) == date(2026, 3, 28)
    # 23:30 UTC on 30 March is 00:30 BST on the 31st.
    assert london_date(datetime(2026, 3, 30, 23, 30, tzinfo=UTC)) == date(2026, 3, 31)
    # 23:30 UTC on 24 October 2026 is 00:30 BST on the 25th; GMT resumes that night.
    assert london_date(datetime(2026, 10, 24, 23, 30, tzinfo=UTC)) == date(2026, 10, 25)
    assert london_date(datetime(2026, 10, 25, 23, 30, tzinfo=UTC)) == date(2026, 10, 25)


def test_other_request_kinds() -> None:
    received = date(2026, 11, 23)
    assert due_date(
        "ehcna-health-advice", "annual-review", received, given=date(2027, 1, 10)
    ) == date(2027, 1, 10)
    with pytest.raises(DueDateError):
        due_date("ehcna-health-advice", "annual-review", received)
    assert due_date("dco-quality-assurance", None, received) == date(2026, 12, 8)
    assert due_date("dco-quality-assurance", None, received, given=date(2026, 12, 1)) == date(
        2026, 12, 1
    )
    assert due_date("dco-quality-assurance", None, received, given=date(2027, 1, 1)) == date(
        2026, 12, 8
    )
    assert due_date(
        "tribunal-health-response", None, received, tribunal_order_received=date(2026, 11, 2)
    ) == date(2026, 12, 7)
    assert due_date("tribunal-health-response", None, received) == date(2026, 12, 28)


@pytest.mark.parametrize(
    ("status", "today", "completed", "expected"),
    [
        ("requested", date(2026, 12, 1), None, "on-track"),
        ("accepted", date(2026, 12, 24), None, "due-soon"),
        ("in-progress", date(2026, 12, 31), None, "due-soon"),
        ("in-progress", date(2027, 1, 1), None, "overdue"),
        ("completed", date(2027, 3, 1), date(2026, 12, 31), "completed-on-time"),
        ("completed", date(2027, 3, 1), date(2027, 1, 1), "completed-late"),
        ("rejected", date(2027, 3, 1), None, "closed-without-advice"),
        ("cancelled", date(2026, 12, 1), None, "closed-without-advice"),
    ],
)
def test_business_status(status: str, today: date, completed: date | None, expected: str) -> None:
    assert business_status(status, date(2026, 12, 31), today, completed) == expected
