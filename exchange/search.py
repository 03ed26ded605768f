"""What every search use case shares below the API: date ranges as SQL conditions, and
keyset pages that stay stable while records are written (the cursor is the last row's
position, not an offset).

The FHIR syntax (`ge2026-11-01`, opaque cursors) is parsed by the front door
(`api/fhir/search.py`) into these.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final, Literal

from sqlalchemy import ColumnElement, Select, and_, or_
from sqlalchemy.orm import Session

from exchange.clock import LONDON
from exchange.errors import Malformed

Comparator = Literal["eq", "gt", "lt", "ge", "le"]
DEFAULT_COUNT: Final = 20
MAX_COUNT: Final = 100


@dataclass(frozen=True, slots=True)
class DateRange:
    """A date search value: the comparator and the [low, high) instants it denotes (a date
    without a time is the whole Europe/London day)."""

    prefix: Comparator
    low: datetime
    high: datetime

    def clause(self, column: Any) -> ColumnElement[bool]:
        """The SQL condition on a timestamp column."""
        conditions: dict[str, ColumnElement[bool]] = {
            "eq": and_(column >= self.low, column < self.high),
            "ge": column >= self.low,
            "gt": column >= self.high,
            "le": column < self.high,
            "lt": column < self.low,
        }
        return conditions[self.prefix]

    def date_clause(self, column: Any) -> ColumnElement[bool]:
        """The SQL condition on a (London) date column."""
        low, high = self.low.astimezone(LONDON).date(), self.high.astimezone(LONDON).date()
        conditions: dict[str, ColumnElement[bool]] = {
            "eq": and_(column >= low, column < high),
            "ge": column >= low,
            "gt": column >= high,
            "le": column < high,
            "lt": column < low,
        }
        return conditions[self.prefix]


@dataclass(frozen=True, slots=True)
class Position:
    """Where a page ended: the last row's sort value and id, as text (a cursor carries it;
    the use case reads it back with its column's parser)."""

    at: str
    id: str


def position_text(value: Any) -> str:
    """A sort value as a Position holds it (instants to the microsecond)."""
    if isinstance(value, datetime):
        return value.isoformat(timespec="microseconds")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def parse_instant(text: str) -> datetime:
    """An instant written by `position_text`."""
    return datetime.fromisoformat(text)


@dataclass(frozen=True, slots=True)
class Paging:
    """How many rows a page holds, after which position, in which order."""

    count: int = DEFAULT_COUNT
    after: Position | None = None
    descending: bool = True


@dataclass(frozen=True, slots=True)
class Page:
    """One page of rows, and where the next begins (None: this is the last)."""

    rows: list[Any]
    next: Position | None


class BadPosition(Malformed):
    """A cursor's position that this search did not write."""

    def __init__(self, position: Position) -> None:
        super().__init__("_cursor is not a cursor this server issued")
        self.position = position


@dataclass(frozen=True, slots=True)
class Found:
    """What a search use case answers: the resources of one page (as the caller may see
    them), how many match in all, and where the next page begins."""

    resources: list[dict[str, Any]]
    total: int
    next: Position | None


def keyset_page(
    session: Session,
    query: Select[Any],
    paging: Paging,
    *,
    moment: Any,
    tiebreak: Any,
    parse_moment: Callable[[str], Any] = parse_instant,
    parse_tiebreak: Callable[[str], Any] = str,
) -> Page:
    """The page of `query` after `paging.after`, ordered by (`moment`, `tiebreak`)."""
    if paging.after is not None:
        try:
            position, last = parse_moment(paging.after.at), parse_tiebreak(paging.after.id)
        except (TypeError, ValueError):
            raise BadPosition(paging.after) from None
        if paging.descending:
            query = query.where(or_(moment < position, and_(moment == position, tiebreak < last)))
        else:
            query = query.where(or_(moment > position, and_(moment == position, tiebreak > last)))
    order = (moment.desc(), tiebreak.desc()) if paging.descending else (moment, tiebreak)
    rows = list(session.scalars(query.order_by(*order).limit(paging.count + 1)))
    return _cut(
        rows,
        paging,
        lambda row: Position(
            position_text(getattr(row, moment.key)), str(getattr(row, tiebreak.key))
        ),
    )


def page_of(
    rows: list[Any],
    paging: Paging,
    sort_key: Callable[[Any], tuple[Any, str]],
    parse_moment: Callable[[str], Any] = parse_instant,
) -> Page:
    """A keyset page over rows already in memory (those filtered by a rule SQL cannot say),
    `sort_key(row)` giving (sort value, id)."""
    ordered = sorted(rows, key=sort_key, reverse=paging.descending)
    if paging.after is not None:
        try:
            after = (parse_moment(paging.after.at), paging.after.id)
        except (TypeError, ValueError):
            raise BadPosition(paging.after) from None
        ordered = [
            row
            for row in ordered
            if (sort_key(row) < after if paging.descending else sort_key(row) > after)
        ]
    return _cut(
        ordered[: paging.count + 1],
        paging,
        lambda row: Position(position_text(sort_key(row)[0]), sort_key(row)[1]),
    )


def _cut(rows: list[Any], paging: Paging, key: Callable[[Any], Position]) -> Page:
    more = len(rows) > paging.count
    rows = rows[: paging.count]
    return Page(rows, key(rows[-1]) if more and rows else None)
