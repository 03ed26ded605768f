"""`exchange audit export`: FHIR NDJSON or a flat CSV, streamed, audited, never overwriting."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from pathlib import Path

from fhir.resources.R4B.auditevent import AuditEvent
from sqlalchemy import select

from exchange.audit.events import Actor, AuditKind, Entity
from exchange.audit.models import AuditRecord
from exchange.audit.service import record
from exchange.db import Database
from tests.cli_runner import exchange
from tests.factories import FrozenClock, audit_entry

#: Free text that breaks naive CSV: commas, quotes, newlines, and a formula.
AWKWARD = 'Section 47, "urgent"\nsecond line; =HYPERLINK("http://evil.example")'


def _seed(url: str, clock: FrozenClock) -> None:
    database = Database(url)
    with database.transaction() as session:
        for number in range(25):
            record(
                session,
                audit_entry(
                    number,
                    entities=(Entity(f"DocumentReference/doc-{number}"),),
                    outcome_desc="consent-withdrawn" if number % 5 == 0 else None,
                ),
                clock,
            )
        record(
            session,
            audit_entry(
                99,
                justification=AWKWARD,
                custodian="PRV01",
                actor=Actor(
                    client_id="icb01-dco",
                    organisation="ICB01",
                    purpose="safeguarding",
                    break_glass=True,
                ),
            ),
            clock,
        )
    database.dispose()


def _without_exports(rows: Iterable[dict[str, str]]) -> list[dict[str, str]]:
    """The rows of the seeded events (an export run by the test is in the trail too)."""
    return [row for row in rows if row["interaction"] != AuditKind.AUDIT_EXPORT.value]


def _exported(tmp_path: Path, url: str, *args: str) -> str:
    output = tmp_path / f"export-{len(list(tmp_path.glob('export-*')))}"
    result = exchange(
        "audit",
        "export",
        "--from",
        "2026-11-01",
        "--to",
        "2026-11-30",
        *args,
        "--output",
        str(output),
        data_dir=tmp_path / "var",
        database_url=url,
    )
    assert result.returncode == 0, result.stderr
    return output.read_text(encoding="utf-8")


def test_csv_round_trips_every_field_through_pythons_csv(
    tmp_path: Path, fresh_database_url: str
) -> None:
    clock = FrozenClock()
    _seed(fresh_database_url, clock)
    rows = _without_exports(
        csv.DictReader(
            io.StringIO(_exported(tmp_path, fresh_database_url, "--format", "csv"), newline="")
        )
    )
    assert len(rows) == 26
    glass = next(row for row in rows if row["break-glass"] == "yes")
    assert glass["justification"] == AWKWARD  # round-trips as it was stored
    assert (
        glass["organisation"],
        glass["client or user"],
        glass["purpose"],
        glass["custodian"],
    ) == ("ICB01", "icb01-dco", "safeguarding", "PRV01")
    refused = [row for row in rows if row["reason"] == "consent-withdrawn"]
    assert len(refused) == 5 and all(
        row["resource"].startswith("DocumentReference/") for row in refused
    )
    assert [row["time"] for row in rows] == sorted(row["time"] for row in rows)


def test_a_cell_starting_like_a_formula_is_defused(tmp_path: Path, fresh_database_url: str) -> None:
    clock = FrozenClock()
    database = Database(fresh_database_url)
    with database.transaction() as session:
        record(session, audit_entry(1, justification="=cmd|' /C calc'!A0"), clock)
    database.dispose()
    rows = list(
        csv.DictReader(
            io.StringIO(_exported(tmp_path, fresh_database_url, "--format", "csv"), newline="")
        )
    )
    assert rows[0]["justification"] == "'=cmd|' /C calc'!A0"


def test_ndjson_is_fhir_r4_audit_events_filtered_by_organisation(
    tmp_path: Path, fresh_database_url: str
) -> None:
    clock = FrozenClock()
    _seed(fresh_database_url, clock)
    lines = _exported(
        tmp_path, fresh_database_url, "--format", "ndjson", "--org", "PRV01"
    ).splitlines()
    assert len(lines) == 1  # PRV01 is only the custodian of the break-glass read
    event = json.loads(lines[0])
    AuditEvent.model_validate(event)
    assert event["id"] and event["meta"]["lastUpdated"]


def test_an_export_is_audited_and_never_overwrites(tmp_path: Path, fresh_database_url: str) -> None:
    clock = FrozenClock()
    _seed(fresh_database_url, clock)
    output = tmp_path / "kept.csv"
    output.write_text("an earlier export\n", encoding="utf-8")
    refused = exchange(
        "audit",
        "export",
        "--from",
        "2026-11-01",
        "--to",
        "2026-11-30",
        "--format",
        "csv",
        "--output",
        str(output),
        data_dir=tmp_path / "var",
        database_url=fresh_database_url,
    )
    assert refused.returncode == 1
    assert "never overwrites" in refused.stderr and "Traceback" not in refused.stderr
    assert output.read_text(encoding="utf-8") == "an earlier export\n"
    database = Database(fresh_database_url)
    with database.transaction() as session:
        kinds = session.scalars(
            select(AuditRecord.kind).where(AuditRecord.kind == AuditKind.AUDIT_EXPORT.value)
        ).all()
    database.dispose()
    assert kinds  # the attempt was recorded


def test_dates_are_london_days_inclusive(tmp_path: Path, fresh_database_url: str) -> None:
    clock = FrozenClock()
    database = Database(fresh_database_url)
    with database.transaction() as session:
        record(session, audit_entry(1), clock)
        clock.advance(days=-30)
        record(session, audit_entry(2), clock)
    database.dispose()
    events = [
        json.loads(line)
        for line in _exported(tmp_path, fresh_database_url, "--format", "ndjson").splitlines()
    ]
    assert len([e for e in events if e["subtype"][0]["code"] != "audit-export"]) == 1
