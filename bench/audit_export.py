"""Audit export benchmark (issue 12), on PostgreSQL, measured in one run:

- speed: `export_lines` (NDJSON, and CSV) written to a file, against reading the same rows
  through the same query and touching each (target >= 0.5);
- memory: the peak RSS growth of the process while exporting 10% of the rows and all of
  them (constant memory: the growth does not grow with the export).

Rows: EXCHANGE_BENCH_EXPORT_ROWS (default 1,000,000). A thousand events are recorded by the
service (reads, searches, refusals, break-glass with free text full of commas, quotes and
newlines) and copied in SQL, each copy a second later, with a sequence and hash of its own.
Each measurement runs in a fresh process so that one cannot inherit another's memory.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from multiprocessing import Queue
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.orm import Session

from bench.database import scratch_schema
from bench.documents import Peak
from exchange.audit.events import Actor, AuditEntry, AuditKind, Entity, Outcome
from exchange.audit.models import AuditRecord
from exchange.audit.service import record
from exchange.db import Database
from exchange.search import DateRange
from exchange.trail.export import ExportFormat, ExportScope, export_lines, export_query

ROWS = int(os.environ.get("EXCHANGE_BENCH_EXPORT_ROWS", "1000000"))
TEMPLATES = 1000
START = datetime(2026, 1, 1, tzinfo=UTC)
#: (lines, seconds, peak RSS growth in KiB)
Measured = tuple[int, float, int]
JUSTIFICATION = 'Strategy meeting, "urgent": the DCO needs it,\nnow; =risk of harm'


def _template(number: int) -> AuditEntry:
    kind = (AuditKind.READ, AuditKind.SEARCH, AuditKind.READ, AuditKind.CREATE)[number % 4]
    glass = number % 50 == 0
    return AuditEntry(
        kind=kind,
        action=kind.action,
        outcome=Outcome.MINOR_FAILURE if number % 10 == 0 else Outcome.SUCCESS,
        actor=Actor(
            client_id="la01-case-system",
            organisation=("LA01", "ICB01", "PRV01")[number % 3],
            address="10.0.0.7",
            purpose="safeguarding" if glass else "ehcna-advice",
            break_glass=glass,
            token_jti=f"jti-{number}",
        ),
        entities=(
            Entity(
                f"DocumentReference/{number:08d}-0000-4000-8000-000000000000", "domain-resource"
            ),
        ),
        custodian="PRV01",
        outcome_desc="consent-withdrawn" if number % 10 == 0 else None,
        justification=JUSTIFICATION if glass else None,
        query="patient.identifier=https://fhir.nhs.uk/Id/nhs-number|9000000009"
        if kind is AuditKind.SEARCH
        else None,
        request_id=f"req-{number}",
    )


def fill(url: str, rows: int) -> None:
    """`rows` events: the templates recorded by the service, then copied in SQL."""
    database = Database(url)
    with database.transaction() as session:
        for number in range(TEMPLATES):
            record(session, _template(number), at=START + timedelta(seconds=number))
    columns = [
        c.name
        for c in AuditRecord.__table__.columns
        if c.name not in ("id", "event_id", "recorded", "sequence", "previous_hash", "hash")
    ]
    names = ", ".join(columns)
    copies = max(0, rows // TEMPLATES - 1)
    with database.engine.begin() as connection:
        connection.execute(
            text(
                f"INSERT INTO audit_event (event_id, recorded, {names}) "  # noqa: S608
                f"SELECT gen_random_uuid(), recorded + make_interval(secs => g * {TEMPLATES}), "
                f"{names} FROM audit_event CROSS JOIN generate_series(1, :copies) AS g"
            ),
            {"copies": copies},
        )
        # A chain position for every row, so NDJSON carries the chain extension as it would.
        connection.execute(
            text(
                "UPDATE audit_event SET sequence = id, "
                "hash = encode(sha256(convert_to(payload || id::text, 'UTF8')), 'hex'), "
                "previous_hash = encode(sha256(convert_to(id::text, 'UTF8')), 'hex')"
            )
        )
        connection.execute(text("ANALYZE audit_event"))
    database.dispose()


def _scope(share: float, rows: int) -> ExportScope:
    span = timedelta(seconds=int(rows * share) + 1)
    return ExportScope(DateRange("eq", START, START + span))


def _run(session: Session, mode: str, scope: ExportScope) -> int:
    """Read or export `scope`; how many lines (or rows) that was."""
    count = 0
    if mode == "read":
        query = export_query(scope).order_by(AuditRecord.recorded, AuditRecord.id)
        for row, _ in session.execute(query.execution_options(yield_per=1000)):
            count += len(row.payload) > 0
        return count
    fmt: ExportFormat = "ndjson" if mode == "ndjson" else "csv"
    with tempfile.TemporaryDirectory() as directory:
        target = Path(directory) / f"export.{fmt}"
        with target.open("w", encoding="utf-8", newline="") as file:
            for line in export_lines(session, scope, fmt):
                file.write(line)
                count += 1
    return count


def _measure(url: str, mode: str, share: float, rows: int, out: Queue[Measured]) -> None:
    database = Database(url)
    with database.transaction() as session:
        session.execute(text("SELECT 1"))
        with Peak(os.getpid()) as peak:
            started = time.perf_counter()
            count = _run(session, mode, _scope(share, rows))
            seconds = time.perf_counter() - started
    database.dispose()
    out.put((count, seconds, (peak.peak - peak.start) // 1024))


def measure(url: str, mode: str, share: float, rows: int) -> Measured:
    """(lines, seconds, peak RSS growth in KiB) of one mode, in a fresh process."""
    context = multiprocessing.get_context("spawn")
    queue: Queue[Measured] = context.Queue()
    process = context.Process(target=_measure, args=(url, mode, share, rows, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def main() -> None:
    """Print the export rows of the benchmark table."""
    with scratch_schema() as url:
        fill(url, ROWS)
        read_count, read_seconds, read_growth = measure(url, "read", 1.0, ROWS)
        results = {
            fmt: (measure(url, fmt, 0.1, ROWS), measure(url, fmt, 1.0, ROWS))
            for fmt in ("ndjson", "csv")
        }
    rate = read_count / read_seconds
    print(f"{'benchmark':<48} {'measured':>14} {'baseline':>14} {'ratio':>7} {'target':>7}")
    for fmt, (tenth, whole) in results.items():
        lines = whole[0] - (1 if fmt == "csv" else 0)
        assert lines == read_count, (fmt, lines, read_count)
        exported = lines / whole[1]
        print(
            f"{f'audit export {fmt}, {read_count:,} events (ev/s)':<48} {exported:>14.0f} "
            f"{rate:>14.0f} {exported / rate:>7.2f} {'>=0.5':>7}"
        )
        print(
            f"{'  peak RSS growth, 10% -> 100% (MiB)':<48} {tenth[2] / 1024:>14.1f} "
            f"{whole[2] / 1024:>14.1f} {whole[2] / max(tenth[2], 1):>7.2f} {'~1':>7}"
        )
    print(f"{'  (reading the rows alone: peak RSS growth MiB)':<48} {read_growth / 1024:>14.1f}")


if __name__ == "__main__":
    main()
