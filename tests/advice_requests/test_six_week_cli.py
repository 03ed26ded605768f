"""`exchange report six-weeks` as an operator runs it: the same figures as the use case
(every request), as JSON, as a CSV with its exceptions section, and as a table with bars;
one-sentence refusals; audited as an operator report."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from exchange.advice_requests.six_weeks import Month, ReportQuery, SixWeekReport, compute
from exchange.audit.events import Actor
from exchange.audit.models import AuditRecord
from exchange.cli.six_weeks import EXCEPTION_COLUMNS
from exchange.codes import SixWeekMeasure
from exchange.db import Database
from exchange.registry.service import apply_bootstrap
from exchange.registry.specs import parse_bootstrap
from tests.cli_runner import exchange
from tests.conftest import world_document
from tests.factories import FrozenClock
from tests.synthetic import generate

MONTH = "2026-10"
OWNERS = ("PRV01", "PRV02", "ICB01")


@pytest.fixture
def generated(fresh_database_url: str) -> str:
    """Requests received June to October 2026, their changes up to now."""
    database = Database(fresh_database_url)
    with database.transaction() as session:
        apply_bootstrap(session, parse_bootstrap(world_document()), FrozenClock(), Actor.operator())
        # PRV03 is not in this world: only the world's owners are asked.
        generate(
            session, date(2026, 6, 1), date(2026, 10, 31), 150, datetime.now(UTC), owners=OWNERS
        )
    database.dispose()
    return fresh_database_url


def _expected(url: str, **only: str) -> SixWeekReport:
    database = Database(url)
    try:
        with database.transaction() as session:
            return compute(
                session, None, ReportQuery(Month.parse(MONTH), **only), datetime.now(UTC)
            )
    finally:
        database.dispose()


def _run(tmp_path: Path, url: str, *args: str) -> str:
    result = exchange(
        "report", "six-weeks", "--month", MONTH, *args, data_dir=tmp_path / "var", database_url=url
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_json_has_the_use_cases_figures(tmp_path: Path, generated: str) -> None:
    printed = json.loads(_run(tmp_path, generated, "--format", "json"))
    expected = _expected(generated)
    assert printed["period"] == MONTH
    for measure, figure in expected.figures.items():
        assert printed["measures"][measure.value]["total"] == figure.total
        assert printed["measures"][measure.value]["by_owner"] == figure.by_owner
    assert expected.count(SixWeekMeasure.REQUESTS_RECEIVED) > 0
    percent = printed["measures"]["percent-within-6-weeks"]["total"]
    assert percent == (None if expected.percent.total is None else float(expected.percent.total))
    assert [e["task_id"] for e in printed["exceptions"]] == [e.task_id for e in expected.exceptions]


def test_csv_has_the_figures_then_the_exceptions(tmp_path: Path, generated: str) -> None:
    rows = list(csv.reader(io.StringIO(_run(tmp_path, generated, "--format", "csv"))))
    blank = rows.index([])
    figures, exceptions = rows[:blank], rows[blank + 1 :]
    assert figures[0] == ["measure", "stratifier", "organisation", "value"]
    expected = _expected(generated)
    totals = {row[0]: row[3] for row in figures[1:] if row[1] == ""}
    for measure, figure in expected.figures.items():
        assert totals[measure.value] == str(figure.total)
    owners = {(row[0], row[2]): row[3] for row in figures[1:] if row[1] == "owner"}
    for measure, figure in expected.figures.items():
        for ods, count in figure.by_owner.items():
            assert owners[measure.value, ods] == str(count)
    for ods, score in expected.percent.by_owner.items():
        assert owners["percent-within-6-weeks", ods] == str(score)
    assert tuple(exceptions[0]) == EXCEPTION_COLUMNS
    assert len(exceptions) - 1 == len(expected.exceptions) > 0
    by_id = {row[0]: dict(zip(EXCEPTION_COLUMNS, row, strict=True)) for row in exceptions[1:]}
    for exception in expected.exceptions:
        row = by_id[exception.task_id]
        assert (row["owner"], row["requester"], row["exception"]) == (
            exception.owner,
            exception.requester,
            exception.exception,
        )
        assert row["days_late"] == ("" if exception.days_late is None else str(exception.days_late))
        assert row["clock_exception"] == exception.clock_exception


def test_the_table_draws_the_share_within_six_weeks(tmp_path: Path, generated: str) -> None:
    printed = _run(tmp_path, generated)
    assert f"Six-week report for {MONTH}" in printed
    assert "By current owner:" in printed and "By requesting LA:" in printed
    assert "█" in printed  # the bars
    expected = _expected(generated)
    assert f"Exceptions ({len(expected.exceptions)}):" in printed
    narrowed = json.loads(_run(tmp_path, generated, "--owner", "PRV01", "--format", "json"))
    assert set(narrowed["measures"]["requests-received"]["by_owner"]) == {"PRV01"}


def test_the_report_is_audited(tmp_path: Path, generated: str) -> None:
    _run(tmp_path, generated, "--requester", "LA01", "--format", "csv")
    database = Database(generated)
    with database.transaction() as session:
        payload = session.scalars(
            select(AuditRecord.payload).where(AuditRecord.kind == "operator:report")
        ).one()
    database.dispose()
    details = {
        d["type"]: d["valueString"] for e in json.loads(payload)["entity"] for d in e["detail"]
    }
    assert details["report"] == "six-weeks" and details["requester"] == "LA01"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--month", "2026-13"), "the period must be a month, YYYY-MM"),
        (("--month", "2026-10", "--owner", "prv01"), "not an ODS code"),
        (("--month", "2999-01"), "2999-01 has not begun"),
    ],
)
def test_refusals_are_one_sentence(
    tmp_path: Path, fresh_database_url: str, args: tuple[str, ...], message: str
) -> None:
    result = exchange(
        "report", "six-weeks", *args, data_dir=tmp_path / "var", database_url=fresh_database_url
    )
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
