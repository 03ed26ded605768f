"""The calendar of a child's or young person's rights: age, school-leaving date, the end of
scope (`consent.md`, "Who may decide").

Every function takes calendar dates; callers turn instants into Europe/London dates first
(`exchange.clock.london_date`), because English law counts ages and school years in civil
days, not in UTC.
"""

from __future__ import annotations

from datetime import date, timedelta
from enum import StrEnum

_FRIDAY = 4
#: The school year starts on 1 September (consent.md: this service's stated policy for
#: birthdays that fall in the summer holiday).
_SCHOOL_YEAR_START_MONTH = 9
#: s.46 keeps an EHC plan to the end of the academic year; the spec takes that as 31 July,
#: so scope ends on 1 August.
_ACADEMIC_YEAR_START = (8, 1)


class LifeStage(StrEnum):
    """Who the subject is in law on a date."""

    #: On or before the school-leaving date (Children and Families Act 2014 s.83(2)).
    CHILD = "child"
    #: After the school-leaving date (Children and Families Act 2014 s.83(2)).
    YOUNG_PERSON = "young-person"
    #: From the first 1 August after the 25th birthday (Children and Families Act 2014 s.46).
    OUT_OF_SCOPE = "out-of-scope"


def anniversary(birth: date, year: int) -> date:
    """The birthday in `year`; 29 February birthdays fall on 1 March in other years.

    Family Law Reform Act 1969 s.9: an age is attained at the start of the anniversary of the
    birth date. A non-leap year has no 29 February, and taking 28 February would make a
    person 16 (presumed to have capacity, Mental Capacity Act 2005 s.1(2)) a day before
    they have lived 16 full years; 1 March never does.
    """
    try:
        return birth.replace(year=year)
    except ValueError:
        return date(year, 3, 1)


def age_on(birth: date, on: date) -> int:
    """Age in whole years on `on` (29 February birthdays: see `anniversary`)."""
    years = on.year - birth.year
    return years - 1 if on < anniversary(birth, on.year) else years


def _last_friday_of_june(year: int) -> date:
    june_30 = date(year, 6, 30)
    return june_30 - timedelta(days=(june_30.weekday() - _FRIDAY) % 7)


def school_leaving_date(birth: date) -> date:
    """The last Friday in June of the school year (1 Sep - 31 Aug) in which they turn 16.

    Education Act 1996 s.8 and the School Leaving Date Order 1997: a person is of compulsory
    school age up to and including this day.
    """
    sixteenth = anniversary(birth, birth.year + 16)
    ends_in = sixteenth.year + 1 if sixteenth.month >= _SCHOOL_YEAR_START_MONTH else sixteenth.year
    return _last_friday_of_june(ends_in)


def out_of_scope_from(birth: date) -> date:
    """The first 1 August strictly after the 25th birthday (Children and Families Act 2014 s.46).

    A plan may be kept to the end of the academic year in which the young person turns 25;
    with the academic year taken as 1 August - 31 July, a person whose 25th birthday is
    itself 1 August turns 25 on the first day of an academic year and stays in scope to its
    end, so scope ends on the 1 August a year later.
    """
    twenty_fifth = anniversary(birth, birth.year + 25)
    month, day = _ACADEMIC_YEAR_START
    first = date(twenty_fifth.year, month, day)
    return first if first > twenty_fifth else date(twenty_fifth.year + 1, month, day)


def life_stage(birth: date, on: date) -> LifeStage:
    """Child, young person, or out of scope, on `on` (`consent.md`)."""
    if on >= out_of_scope_from(birth):
        return LifeStage.OUT_OF_SCOPE
    if on <= school_leaving_date(birth):
        return LifeStage.CHILD
    return LifeStage.YOUNG_PERSON


def one_year_before(on: date) -> date:
    """`on` minus 12 calendar months (29 February becomes 28 February).

    An assessment counts for 12 months (consent.md): capacity is decision- and
    time-specific, so an old assessment says nothing about the person today. Subtracting
    calendar months clamps to the month's end, as date arithmetic in months usually does.
    """
    try:
        return on.replace(year=on.year - 1)
    except ValueError:
        return date(on.year - 1, 2, 28)
