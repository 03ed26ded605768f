"""The dates the law turns on: school-leaving date, end of scope, age, life stage."""

from __future__ import annotations

from datetime import date

import pytest

from exchange.consent.calendar import (
    LifeStage,
    age_on,
    life_stage,
    one_year_before,
    out_of_scope_from,
    school_leaving_date,
)


@pytest.mark.parametrize(
    ("birth", "expected"),
    [
        (date(2010, 8, 31), date(2026, 6, 26)),  # turns 16 on the school year's last day
        (date(2010, 9, 1), date(2027, 6, 25)),  # turns 16 on the next school year's first day
        (date(2010, 6, 27), date(2026, 6, 26)),  # 16 in the summer holiday: the June before
        (date(2012, 5, 10), date(2028, 6, 30)),  # 30 June itself is a Friday
        (date(2012, 2, 29), date(2028, 6, 30)),
        (date(2011, 2, 28), date(2027, 6, 25)),
    ],
)
def test_school_leaving_date(birth: date, expected: date) -> None:
    assert school_leaving_date(birth) == expected
    assert expected.weekday() == 4


@pytest.mark.parametrize(
    ("birth", "expected"),
    [
        (date(2001, 11, 19), date(2027, 8, 1)),
        (date(2001, 7, 31), date(2026, 8, 1)),
        # A 1 August birthday opens the academic year of the 25th birthday: in scope to its end.
        (date(2001, 8, 1), date(2027, 8, 1)),
        (date(2001, 8, 2), date(2027, 8, 1)),
        (date(2004, 2, 29), date(2029, 8, 1)),
    ],
)
def test_out_of_scope_from(birth: date, expected: date) -> None:
    assert out_of_scope_from(birth) == expected


@pytest.mark.parametrize(
    ("on", "expected"),
    [
        (date(2025, 2, 28), 0),  # no 29 February in 2025: the birthday is 1 March
        (date(2025, 3, 1), 1),
        (date(2028, 2, 28), 3),
        (date(2028, 2, 29), 4),
        (date(2040, 2, 28), 15),
        (date(2040, 2, 29), 16),
    ],
)
def test_age_on_for_29_february(on: date, expected: int) -> None:
    assert age_on(date(2024, 2, 29), on) == expected


def test_age_on_ordinary_birthday() -> None:
    assert age_on(date(2010, 3, 15), date(2026, 3, 14)) == 15
    assert age_on(date(2010, 3, 15), date(2026, 3, 15)) == 16


def test_life_stage_boundaries() -> None:
    birth = date(2010, 8, 31)
    assert life_stage(birth, date(2026, 6, 26)) is LifeStage.CHILD
    assert life_stage(birth, date(2026, 6, 27)) is LifeStage.YOUNG_PERSON
    assert life_stage(birth, date(2036, 7, 31)) is LifeStage.YOUNG_PERSON
    assert life_stage(birth, date(2036, 8, 1)) is LifeStage.OUT_OF_SCOPE
    assert life_stage(birth, birth) is LifeStage.CHILD


def test_one_year_before() -> None:
    assert one_year_before(date(2026, 10, 1)) == date(2025, 10, 1)
    assert one_year_before(date(2028, 2, 29)) == date(2027, 2, 28)
