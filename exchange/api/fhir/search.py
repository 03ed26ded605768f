"""Search request parsing shared by every resource type: strict parameter handling,
`_count` bounds, opaque keyset cursors and token / reference values (`api.md`)."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final
from urllib.parse import urlencode

from flask import request
from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import Session

from exchange.clock import LONDON
from exchange.fhir.outcome import FhirError, Issue, operation_outcome

DEFAULT_COUNT: Final = 20
MAX_COUNT: Final = 100
_CONTROL: Final = frozenset({"_count", "_cursor", "_format", "_sort"})


@dataclass
class SearchRequest:
    """The parameters of one search, after strict (or lenient) handling."""

    params: dict[str, list[str]]
    count: int
    cursor: dict[str, Any] | None
    ignored: list[str] = field(default_factory=list)

    def first(self, name: str) -> str | None:
        """The first value of a parameter, or None."""
        values = self.params.get(name)
        return values[0] if values else None

    def ignored_outcome(self) -> dict[str, Any] | None:
        """The OperationOutcome listing parameters ignored under `handling=lenient`."""
        if not self.ignored:
            return None
        return operation_outcome(
            [
                Issue("warning", "not-supported", f"search parameter {name!r} was ignored")
                for name in self.ignored
            ]
        )


def parse_search(allowed: Iterable[str]) -> SearchRequest:
    """Read the query string of the current request as a search over `allowed` parameters.

    Unknown parameters are a 400, unless the client asked for `Prefer: handling=lenient`,
    in which case they are ignored and listed in the Bundle's OperationOutcome.
    """
    allowed_set = set(allowed) | _CONTROL
    lenient = "handling=lenient" in request.headers.get("Prefer", "").replace(" ", "")
    params: dict[str, list[str]] = {}
    ignored: list[str] = []
    for name in request.args:
        base = name.split(":", 1)[0]
        if name not in allowed_set and base not in allowed_set:
            if lenient:
                ignored.append(name)
                continue
            raise FhirError(400, "not-supported", f"unknown search parameter {name!r}")
        params[name] = request.args.getlist(name)
    count = _count(params.pop("_count", [None])[0])
    cursor = decode_cursor(params.pop("_cursor", [None])[0])
    params.pop("_format", None)
    return SearchRequest(params, count, cursor, ignored)


def _count(value: str | None) -> int:
    if value is None:
        return DEFAULT_COUNT
    if not value.isdigit():
        raise FhirError(400, "invalid", "_count must be a whole number", expression=("_count",))
    return min(int(value), MAX_COUNT)


def encode_cursor(position: dict[str, Any]) -> str:
    """An opaque cursor for the next page (keyset: the last row's sort key)."""
    raw = json.dumps(position, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(value: str | None) -> dict[str, Any] | None:
    """Read a cursor made by `encode_cursor`; 400 if it was tampered with or truncated."""
    if value is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        position = json.loads(raw)
    except (binascii.Error, ValueError):
        raise FhirError(400, "invalid", "_cursor is not a cursor this server issued") from None
    if not isinstance(position, dict):
        raise FhirError(400, "invalid", "_cursor is not a cursor this server issued")
    return position


def page_urls(search: SearchRequest, path: str, next_position: dict[str, Any] | None) -> tuple[str, str | None]:
    """The `self` and `next` links of a page."""
    base = request.url_root.rstrip("/")
    query: list[tuple[str, str]] = [(k, v) for k, values in search.params.items() for v in values]
    query.append(("_count", str(search.count)))
    self_query = list(query)
    if search.cursor is not None:
        self_query.append(("_cursor", encode_cursor(search.cursor)))
    self_url = f"{base}{path}?{urlencode(self_query)}"
    if next_position is None:
        return self_url, None
    return self_url, f"{base}{path}?{urlencode([*query, ('_cursor', encode_cursor(next_position))])}"


def split_token(value: str) -> tuple[str | None, str]:
    """A token search value `system|code` (or bare `code`) as (system, code)."""
    if "|" in value:
        system, code = value.split("|", 1)
        return (system or None), code
    return None, value


_DATE_PREFIXES: Final = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
_DATE_PATTERN: Final = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})(?:T(?P<time>\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


@dataclass(frozen=True, slots=True)
class DateBound:
    """A date search value: comparator and the [low, high) instant range it denotes."""

    prefix: str
    low: datetime
    high: datetime


def parse_date(value: str, name: str) -> DateBound:
    """A FHIR date search value (`ge2026-11-01`, `2026-11`, `lt2026-11-23T10:00:00Z` ...).

    Dates without a time are Europe/London calendar days (`consent.md`); times without an
    offset are UTC.
    """
    prefix = value[:2] if value[:2] in _DATE_PREFIXES else "eq"
    text = value[2:] if value[:2] in _DATE_PREFIXES else value
    match = _DATE_PATTERN.match(text)
    if match is None or prefix not in ("eq", "gt", "lt", "ge", "le"):
        raise FhirError(400, "invalid", f"{name}: {value!r} is not a supported date search value", expression=(name,))
    try:
        year, month, day = int(match["y"]), int(match["m"] or 1), int(match["d"] or 1)
        if match["time"]:
            tz = UTC if match["tz"] in (None, "Z") else datetime.strptime(match["tz"], "%z").tzinfo
            clock = match["time"] if match["time"].count(":") == 2 else match["time"] + ":00"
            low = datetime.fromisoformat(f"{year:04d}-{month:02d}-{day:02d}T{clock}").replace(tzinfo=tz)
            high = low + timedelta(seconds=1)
        else:
            start = date(year, month, day)
            if match["d"]:
                end = start + timedelta(days=1)
            elif match["m"]:
                end = date(year + (month == 12), month % 12 + 1, 1)
            else:
                end = date(year + 1, 1, 1)
            low = datetime.combine(start, time(), LONDON)
            high = datetime.combine(end, time(), LONDON)
    except ValueError:
        raise FhirError(400, "invalid", f"{name}: {value!r} is not a valid date", expression=(name,)) from None
    return DateBound(prefix, low.astimezone(UTC), high.astimezone(UTC))


def date_clause(column: Any, bound: DateBound) -> Any:
    """The SQL condition for a date bound on a timestamp column."""
    return {
        "eq": and_(column >= bound.low, column < bound.high),
        "ge": column >= bound.low,
        "gt": column >= bound.high,
        "le": column < bound.high,
        "lt": column < bound.low,
    }[bound.prefix]


def split_values(values: list[str]) -> list[str]:
    """Comma-separated alternatives of a parameter (OR), over all its repetitions."""
    return [item for value in values for item in value.split(",") if item]


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a keyset search, with its links."""

    rows: list[Any]
    self_url: str
    next_url: str | None


def _position(value: Any) -> str:
    return str(value.isoformat(timespec="microseconds") if isinstance(value, datetime) else value.isoformat())


def keyset_page(
    session: Session,
    query: Select[Any],
    search: SearchRequest,
    *,
    moment: Any,
    tiebreak: Any,
    parse_tiebreak: Callable[[str], Any],
    descending: bool,
    path: str,
    sort_name: str = "date",
    parse_moment: Callable[[str], Any] | None = None,
) -> Page:
    """The page of `query` after the cursor, ordered by (`moment`, `tiebreak`), newest first
    when `descending`. The cursor holds the last row's position, not an offset, so pages
    do not shift while records are written."""
    if search.cursor is not None:
        try:
            text = str(search.cursor["at"])
            position = parse_moment(text) if parse_moment else parse_date(text, "_cursor").low
            last = parse_tiebreak(str(search.cursor["id"]))
        except (KeyError, ValueError, FhirError):
            raise FhirError(400, "invalid", "_cursor is not a cursor this server issued") from None
        if descending:
            query = query.where(or_(moment < position, and_(moment == position, tiebreak < last)))
        else:
            query = query.where(or_(moment > position, and_(moment == position, tiebreak > last)))
    order = (moment.desc(), tiebreak.desc()) if descending else (moment, tiebreak)
    rows = list(session.scalars(query.order_by(*order).limit(search.count + 1)))
    more = len(rows) > search.count
    rows = rows[: search.count]
    next_position = None
    if more and rows:
        last_row = rows[-1]
        next_position = {
            "at": _position(getattr(last_row, moment.key)),
            "id": str(getattr(last_row, tiebreak.key)),
        }
    search.params["_sort"] = [f"-{sort_name}" if descending else sort_name]
    self_url, next_url = page_urls(search, path, next_position)
    return Page(rows, self_url, next_url)
