"""Search request parsing shared by every resource type (`api.md`): strict parameter
handling, `_count` bounds, opaque cursors, and values parsed strictly into what the use
cases take (date ranges, codes, NHS numbers, ODS codes, references). No SQL: the queries
are the domain's (`exchange/search.py` and each domain's `queries.py`)."""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final, TypeVar
from urllib.parse import urlencode

from flask import request

from exchange.agreements.ods import is_ods_code
from exchange.api.context import services
from exchange.clock import LONDON
from exchange.codes import NHS_NUMBER_SYSTEM, ODS_SYSTEM
from exchange.errors import Issue
from exchange.fhir.outcome import FhirError, operation_outcome
from exchange.patients.nhs_number import is_valid_nhs_number
from exchange.search import DateRange, Paging, Position

DEFAULT_COUNT: Final = 20
MAX_COUNT: Final = 100
_CONTROL: Final = frozenset({"_count", "_cursor", "_format", "_sort"})
#: NUL and the other C0 controls are in no search value (PostgreSQL cannot even compare NUL).
_CONTROL_CHARACTER: Final = re.compile(r"[\x00-\x1f\x7f]")

_T = TypeVar("_T")


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

    def paging(self, descending: bool) -> Paging:
        """The domain's paging: the count, the cursor's position, the order."""
        after = None
        if self.cursor is not None:
            at, last = self.cursor.get("at"), self.cursor.get("id")
            if not isinstance(at, str) or not isinstance(last, str):
                raise FhirError(400, "invalid", "_cursor is not a cursor this server issued")
            after = Position(at, last)
        return Paging(self.count, after, descending)

    def links(
        self,
        path: str,
        following: Position | None,
        sort_name: str | None = None,
        descending: bool = True,
    ) -> tuple[str, str | None]:
        """The `self` and `next` links of a page (with the sort it was made in), the next
        page beginning after `following`."""
        if sort_name is not None:
            self.params["_sort"] = [f"-{sort_name}" if descending else sort_name]
        following_cursor = (
            {"at": following.at, "id": following.id} if following is not None else None
        )
        return page_urls(self, path, following_cursor)

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
        values = request.args.getlist(name)
        if any(_CONTROL_CHARACTER.search(text) for text in (name, *values)):
            raise FhirError(400, "invalid", "search parameters may not contain control characters")
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
    # Compared as text first: a count of thousands of digits is not worth converting.
    if (
        not (value.isascii() and value.isdigit())
        or len(value) > len(str(MAX_COUNT))
        or int(value) > MAX_COUNT
    ):
        raise FhirError(
            400,
            "invalid",
            f"_count must be a whole number from 0 to {MAX_COUNT}",
            expression=("_count",),
        )
    return int(value)


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


def page_urls(
    search: SearchRequest, path: str, next_position: dict[str, Any] | None
) -> tuple[str, str | None]:
    """The `self` and `next` links of a page."""
    base = services().settings.public_base_url
    query: list[tuple[str, str]] = [(k, v) for k, values in search.params.items() for v in values]
    query.append(("_count", str(search.count)))
    self_query = list(query)
    if search.cursor is not None:
        self_query.append(("_cursor", encode_cursor(search.cursor)))
    self_url = f"{base}{path}?{urlencode(self_query)}"
    if next_position is None:
        return self_url, None
    return (
        self_url,
        f"{base}{path}?{urlencode([*query, ('_cursor', encode_cursor(next_position))])}",
    )


def split_token(value: str) -> tuple[str | None, str]:
    """A token search value `system|code` (or bare `code`) as (system, code)."""
    if "|" in value:
        system, code = value.split("|", 1)
        return (system or None), code
    return None, value


def code_value(value: str, parameter: str, codes: Iterable[str], system: str | None = None) -> str:
    """A token search value that must be one of `codes` (of `system`, when given), else 400:
    an unknown code matches nothing, and is more likely a mistake than a question."""
    given_system, code = split_token(value)
    if code not in set(codes) or (
        given_system is not None and system is not None and given_system != system
    ):
        raise FhirError(
            400,
            "invalid",
            f"{parameter}: {code!r} is not a code this parameter takes",
            expression=(parameter,),
        )
    return code


def reference_id(value: str, parameter: str, resource_type: str) -> uuid.UUID:
    """The id of a reference search value (`<Type>/<id>` or a bare id), else 400."""
    try:
        return uuid.UUID(value.removeprefix(f"{resource_type}/"))
    except ValueError:
        raise FhirError(
            400,
            "invalid",
            f"{parameter}: {value!r} is not a {resource_type} reference",
            expression=(parameter,),
        ) from None


def nhs_number_value(value: str, parameter: str) -> str:
    """An NHS number search value (`<system>|<n>` or bare): ten ASCII digits with a valid
    check digit, else 400 (a lookalike must never match, nor be silently empty)."""
    system, code = split_token(value)
    if system not in (None, NHS_NUMBER_SYSTEM):
        raise FhirError(
            400,
            "invalid",
            f"{parameter} must use the system {NHS_NUMBER_SYSTEM}",
            expression=(parameter,),
        )
    if not is_valid_nhs_number(code):
        raise FhirError(
            400,
            "invalid",
            f"{parameter}: not an NHS number (ten digits with a valid check digit)",
            expression=(parameter,),
        )
    return code


def ods_value(value: str, parameter: str) -> str:
    """An organisation search value (`<ODS system>|<code>` or bare): an ODS code, whole and
    ASCII, else 400."""
    system, code = split_token(value)
    if system not in (None, ODS_SYSTEM):
        raise FhirError(
            400,
            "invalid",
            f"{parameter} must use the ODS system {ODS_SYSTEM}",
            expression=(parameter,),
        )
    if not is_ods_code(code):
        raise FhirError(
            400, "invalid", f"{parameter}: {code!r} is not an ODS code", expression=(parameter,)
        )
    return code


_DATE_PREFIXES: Final = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
_DATE_PATTERN: Final = re.compile(
    r"(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})(?:T(?P<time>\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?",
    re.ASCII,
)


def parse_date(value: str, name: str) -> DateRange:
    """A FHIR date search value (`ge2026-11-01`, `2026-11`, `lt2026-11-23T10:00:00Z` ...).

    Dates without a time are Europe/London calendar days (`consent.md`); times without an
    offset are UTC.
    """
    prefix = value[:2] if value[:2] in _DATE_PREFIXES else "eq"
    text = value[2:] if value[:2] in _DATE_PREFIXES else value
    match = _DATE_PATTERN.fullmatch(text)
    if match is None or prefix not in ("eq", "gt", "lt", "ge", "le"):
        raise FhirError(
            400,
            "invalid",
            f"{name}: {value!r} is not a supported date search value",
            expression=(name,),
        )
    try:
        year, month, day = int(match["y"]), int(match["m"] or 1), int(match["d"] or 1)
        if match["time"]:
            tz = UTC if match["tz"] in (None, "Z") else datetime.strptime(match["tz"], "%z").tzinfo
            clock = match["time"] if match["time"].count(":") == 2 else match["time"] + ":00"
            low = datetime.fromisoformat(f"{year:04d}-{month:02d}-{day:02d}T{clock}").replace(
                tzinfo=tz
            )
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
        bound = DateRange(prefix, low.astimezone(UTC), high.astimezone(UTC))  # type: ignore[arg-type]
    except (ValueError, OverflowError):
        # OverflowError: the day after 9999-12-31, or an offset past the calendar's ends.
        raise FhirError(
            400, "invalid", f"{name}: {value!r} is not a valid date", expression=(name,)
        ) from None
    return bound


def groups(search: SearchRequest, *names: str, keep_empty: bool = True) -> list[list[str]]:
    """Each repetition of the parameters `names` (a parameter and its aliases) as the list
    of its comma-separated alternatives. FHIR R4 search: every repetition must be met
    (AND), by any one of its values (OR). With `keep_empty=False` a repetition with no
    value is left out (a reference without a value narrows nothing); kept, it is a group
    nothing meets (a token without a value matches nothing)."""
    found = [
        [item for item in value.split(",") if item]
        for name in names
        for value in search.params.get(name, [])
    ]
    return found if keep_empty else [group for group in found if group]


def any_of(
    search: SearchRequest, convert: Callable[[str], _T], *names: str, keep_empty: bool = True
) -> list[_T] | None:
    """`one_of` the groups of the parameters `names`, each value converted (400 for one
    that does not convert)."""
    return one_of(
        [
            [convert(value) for value in group]
            for group in groups(search, *names, keep_empty=keep_empty)
        ]
    )


def codes_of(
    search: SearchRequest, name: str, codes: Iterable[str], system: str | None = None
) -> list[str] | None:
    """The codes (of `codes`, in `system` when given) a resource's one value of the token
    parameter `name` may be: `one_of` its groups, 400 for a code it does not take."""
    return any_of(search, lambda value: code_value(value, name, codes, system), name)


def patient_ids(search: SearchRequest, *names: str) -> list[uuid.UUID] | None:
    """The patients a resource's one patient may be, named by `names` (`patient`, and
    its aliases): `Patient/<id>` or a bare id; a repetition without a value narrows
    nothing."""
    return one_of(
        [
            [reference_id(value, name, "Patient") for value in group]
            for name in names
            for group in groups(search, name, keep_empty=False)
        ]
    )


def nhs_numbers(search: SearchRequest) -> list[str] | None:
    """The NHS numbers a resource's one patient may have (`patient.identifier`)."""
    return any_of(
        search,
        lambda value: nhs_number_value(value, "patient.identifier"),
        "patient.identifier",
        keep_empty=False,
    )


def one_of(given: list[list[_T]]) -> list[_T] | None:
    """The values an element holding a single value may have to meet every group of
    alternatives: their intersection, in the first group's order (`status=a,b&status=b`
    is `b`; `patient=A&patient=B` can be nobody: []). None when no group was given."""
    if not given:
        return None
    allowed = list(dict.fromkeys(given[0]))
    for group in given[1:]:
        allowed = [value for value in allowed if value in group]
    return allowed
