"""Reading the console's forms and query strings into what the use cases take, with an
error message per field for the error summary. Values are parsed strictly, as the API
parses its search parameters (an NHS number with its check digit, an ODS code...)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Final

from exchange.agreements.ods import is_ods_code
from exchange.clock import LONDON
from exchange.codes import Purpose
from exchange.patients.nhs_number import is_valid_nhs_number
from exchange.search import DateRange, Paging, Position
from exchange.trail.queries import Agent, EventFilters

PAGE_SIZE: Final = 50
OUTCOMES: Final = {"success": ("0",), "refused": ("4",), "failed": ("8", "12")}
PURPOSES: Final = tuple(purpose.value for purpose in Purpose)
#: The earliest instant an open-ended date range reaches back to.
EPOCH: Final = datetime(2000, 1, 1, tzinfo=UTC)
_MAX_TEXT: Final = 256


def nhs_number_value(text: str) -> str:
    """An NHS number as typed (spaces and dashes allowed), digits only."""
    return "".join(ch for ch in text if ch not in " -")


def london_day(text: str) -> date | None:
    """A YYYY-MM-DD date, or None if it is not one."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def day_start(day: date) -> datetime:
    """The first instant of a London day, in UTC."""
    return datetime.combine(day, time(), LONDON).astimezone(UTC)


@dataclass
class LogQuery:
    """The access log's filters as typed, as the use case takes them, and what is wrong."""

    values: dict[str, str]
    filters: EventFilters = field(default_factory=EventFilters)
    first: date | None = None
    last: date | None = None
    paging: Paging = field(default_factory=Paging)
    errors: dict[str, str] = field(default_factory=dict)

    def recorded(self, now: datetime) -> DateRange:
        """The date range as one `eq` range (for the export), open ends filled."""
        low = day_start(self.first) if self.first else EPOCH
        high = day_start(self.last + timedelta(days=1)) if self.last else now + timedelta(seconds=1)
        return DateRange("eq", low, high)


FIELDS: Final = (
    "nhs_number",
    "organisation",
    "who",
    "from",
    "to",
    "outcome",
    "purpose",
    "break_glass",
)


def log_query(args: Mapping[str, str]) -> LogQuery:
    """The access log's filters from the query string."""
    values = {name: args.get(name, "").strip()[:_MAX_TEXT] for name in FIELDS}
    query = LogQuery(values)
    errors = query.errors
    nhs_numbers: tuple[str, ...] = ()
    if values["nhs_number"]:
        number = nhs_number_value(values["nhs_number"])
        if is_valid_nhs_number(number):
            nhs_numbers = (number,)
        else:
            errors["nhs_number"] = "Enter a valid NHS number: 10 digits, like 943 476 5919"
    organisations: tuple[str, ...] = ()
    if values["organisation"]:
        if is_ods_code(values["organisation"].upper()):
            organisations = (values["organisation"].upper(),)
        else:
            errors["organisation"] = "Enter an ODS code, like LA01"
    who = (Agent("any", values["who"]),) if values["who"] else ()
    ranges: list[DateRange] = []
    for name in ("from", "to"):
        if values[name]:
            day = london_day(values[name])
            if day is None:
                errors[name] = "Enter a real date, like 2026-11-23"
            elif name == "from":
                query.first = day
                ranges.append(DateRange("ge", day_start(day), day_start(day + timedelta(1))))
            else:
                query.last = day
                ranges.append(DateRange("le", day_start(day), day_start(day + timedelta(1))))
    if query.first and query.last and query.last < query.first:
        errors["to"] = "The end date must be on or after the start date"
    outcomes = OUTCOMES.get(values["outcome"], ())
    if values["outcome"] and not outcomes:
        errors["outcome"] = "Choose an outcome from the list"
    purposes = (values["purpose"],) if values["purpose"] in PURPOSES else ()
    if values["purpose"] and not purposes:
        errors["purpose"] = "Choose a purpose from the list"
    break_glass = {"yes": True, "no": False}.get(values["break_glass"])
    if values["break_glass"] and break_glass is None:
        errors["break_glass"] = "Choose yes, no or either"
    query.filters = EventFilters(
        recorded=tuple(ranges),
        outcomes=outcomes,
        purposes=purposes,
        agents=(who,) if who else (),
        organisations=organisations,
        nhs_numbers=nhs_numbers,
        break_glass=break_glass,
    )
    query.paging = paging(args)
    return query


def paging(args: Mapping[str, str], descending: bool = True, count: int = PAGE_SIZE) -> Paging:
    """Keyset paging from `after` and `after_id` (the last row of the previous page)."""
    at, last = args.get("after", ""), args.get("after_id", "")
    after = Position(at[:64], last[:64]) if at and last else None
    return Paging(count, after, descending)
