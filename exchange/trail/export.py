"""Taking the audit trail out (`audit.md`, Export): FHIR NDJSON for systems, or a flat CSV
an IG lead opens in a spreadsheet. Streamed row by row from a server-side cursor, so an
export of any size runs in constant memory; each export is itself audited.

The same use case serves `exchange audit export` (the operator: every organisation, or one)
and the console's CSV download (an IG lead: their organisation's events only).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

import orjson
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from exchange.audit.events import Action, Actor, AuditEntry, AuditKind, Outcome
from exchange.audit.models import AuditRecord
from exchange.audit.service import record
from exchange.caller import Caller
from exchange.patients.models import Patient
from exchange.search import DateRange
from exchange.trail.entries import log_entry
from exchange.trail.queries import EventFilters, conditions, event_resource

ExportFormat = Literal["ndjson", "csv"]
#: The CSV's columns: one event a row, the questions an IG lead asks of it.
CSV_COLUMNS: Final = (
    "time",
    "event",
    "organisation",
    "client or user",
    "interaction",
    "action",
    "patient NHS number",
    "resource",
    "purpose",
    "outcome",
    "reason",
    "break-glass",
    "justification",
    "custodian",
    "request id",
)
#: Rows fetched from the cursor at a time: enough to amortise the round trip, few enough
#: that memory stays flat.
BATCH: Final = 1000


@dataclass(frozen=True, slots=True)
class ExportScope:
    """Which events to take out: a time range, optionally one organisation (as actor or
    custodian), one patient (by NHS number) and the access log's other filters."""

    recorded: DateRange
    organisation: str | None = None
    nhs_number: str | None = None
    filters: EventFilters | None = None

    @property
    def one_patient(self) -> bool:
        """Whether the export is about one child."""
        return self.nhs_number is not None or bool(self.filters and self.filters.nhs_numbers)


def scope_for(caller: Caller, recorded: DateRange, filters: EventFilters) -> ExportScope:
    """What an IG lead may take out: their organisation's events (as actor or custodian,
    as they see them in the access log) matching the log's filters."""
    return ExportScope(recorded, caller.organisation, None, filters)


def export_query(scope: ExportScope) -> Any:
    query = (
        select(AuditRecord, Patient.nhs_number)
        .outerjoin(Patient, Patient.id == AuditRecord.patient_id)
        .where(scope.recorded.clause(AuditRecord.recorded))
    )
    if scope.organisation is not None:
        query = query.where(
            or_(
                AuditRecord.agent_org == scope.organisation,
                AuditRecord.custodian_org == scope.organisation,
            )
        )
    if scope.nhs_number is not None:
        query = query.where(Patient.nhs_number == scope.nhs_number)
    if scope.filters is not None:
        query = query.where(*conditions(scope.filters))
    return query


def count_events(session: Session, scope: ExportScope) -> int:
    """How many events the export will hold (for a progress bar)."""
    return session.scalar(select(func.count()).select_from(export_query(scope).subquery())) or 0


def record_export(
    session: Session,
    actor: Actor,
    scope: ExportScope,
    fmt: ExportFormat,
    now: datetime,
    request_id: str | None = None,
) -> None:
    """Audit an export: who took what out (the time range, organisation and whether one
    patient was asked for; never the NHS number itself in the details)."""
    details = {
        "format": fmt,
        "from": scope.recorded.low.isoformat(),
        "to": scope.recorded.high.isoformat(),
    }
    if scope.organisation:
        details["organisation"] = scope.organisation
    if scope.one_patient:
        details["one-patient"] = "yes"
    record(
        session,
        AuditEntry(
            kind=AuditKind.AUDIT_EXPORT,
            action=Action.EXECUTE,
            outcome=Outcome.SUCCESS,
            actor=actor,
            details=details,
            request_id=request_id,
        ),
        at=now,
    )


def export_lines(
    session: Session,
    scope: ExportScope,
    fmt: ExportFormat,
    progress: Callable[[int], object] | None = None,
) -> Iterator[str]:
    """The export, line by line (CSV: the header first), oldest event first."""
    rows = session.execute(
        export_query(scope)
        .order_by(AuditRecord.recorded, AuditRecord.id)
        .execution_options(yield_per=BATCH)
    )
    lines = _CsvLines()
    if fmt == "csv":
        yield lines.line(CSV_COLUMNS)
    for count, (event, nhs_number) in enumerate(rows, start=1):
        yield _ndjson(event) if fmt == "ndjson" else lines.line(_csv_row(event, nhs_number))
        if progress is not None and count % BATCH == 0:
            progress(BATCH)


def _ndjson(event: AuditRecord) -> str:
    # orjson: the same compact UTF-8 JSON as json.dumps(separators=(",", ":"),
    # ensure_ascii=False), at a fraction of the cost (profile: bench/profiles/audit-export.md).
    return orjson.dumps(event_resource(event)).decode("utf-8") + "\n"


#: A cell a spreadsheet would run as a formula (CSV injection, OWASP): free text from API
#: clients (a justification, a reason) must not, so such a cell is prefixed with a quote.
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")


class _CsvLines:
    """Rows rendered one at a time, RFC 4180 quoting by the csv module."""

    def __init__(self) -> None:
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer, lineterminator="\r\n")

    def line(self, values: tuple[str, ...] | list[str]) -> str:
        self._writer.writerow(
            ["'" + value if value.startswith(_FORMULA_START) else value for value in values]
        )
        text = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        return text


def _csv_row(event: AuditRecord, nhs_number: str | None) -> list[str]:
    entry = log_entry(event, nhs_number)
    return [
        entry.recorded.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        entry.event_id,
        entry.organisation,
        entry.who,
        entry.interaction,
        entry.action,
        entry.nhs_number,
        entry.resource,
        entry.purpose,
        entry.outcome,
        entry.reason,
        "yes" if entry.break_glass else "no",
        entry.justification,
        entry.custodian,
        entry.request_id,
    ]
