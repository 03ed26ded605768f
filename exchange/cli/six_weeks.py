"""`exchange report six-weeks`: the monthly six-week figures, for the operator (every
request), as a table with bar charts, CSV (figures, then the exceptions) or JSON."""

from __future__ import annotations

import csv
import json
import sys
from dataclasses import asdict
from decimal import Decimal
from typing import Any

import click

from exchange.advice_requests.six_weeks import (
    Figure,
    Month,
    ReportPeriodError,
    ReportQuery,
    SixWeekReport,
    operator_six_week_report,
)
from exchange.agreements.ods import is_ods_code
from exchange.audit.events import Actor
from exchange.audit.sealer import seal_all
from exchange.cli.context import CliContext, pass_context
from exchange.cli.registry import table
from exchange.cli.report import report
from exchange.codes import SixWeekMeasure

Measure = SixWeekMeasure
#: The per-organisation columns of the table and the CSV's strata, in reading order.
STRATA_MEASURES = (
    Measure.REQUESTS_RECEIVED,
    Measure.DUE_IN_PERIOD,
    Measure.COMPLETED_WITHIN_6_WEEKS,
    Measure.COMPLETED_LATE,
    Measure.LATE_WITH_CLOCK_EXCEPTION,
    Measure.OUTSTANDING_OVERDUE,
)
EXCEPTION_COLUMNS = (
    "task",
    "owner",
    "requester",
    "case_reference",
    "received",
    "due",
    "exception",
    "reason",
    "days_late",
    "clock_exception",
)
BAR_WIDTH = 20


def _month(_ctx: click.Context, _param: click.Parameter, value: str) -> Month:
    try:
        return Month.parse(value)
    except ReportPeriodError as error:
        raise click.BadParameter(error.message) from None


def _ods(_ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not is_ods_code(value):
        raise click.BadParameter("not an ODS code", param=param)
    return value


@report.command("six-weeks")
@click.option("--month", required=True, callback=_month, help="The month, YYYY-MM.")
@click.option("--owner", callback=_ods, help="Only requests currently owned by this ODS code.")
@click.option("--requester", callback=_ods, help="Only requests made by this ODS code.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
)
@pass_context
def six_weeks(
    cli: CliContext, month: Month, owner: str | None, requester: str | None, fmt: str
) -> None:
    """The month's share of health advice returned within 6 weeks, with its exceptions."""
    database = cli.database()
    with database.transaction() as session:
        result = operator_six_week_report(
            session, Actor.operator(), ReportQuery(month, owner, requester), cli.clock.now()
        )
    seal_all(database)
    if fmt == "json":
        click.echo(json.dumps(_as_json(result), indent=2))
    elif fmt == "csv":
        _write_csv(result)
    else:
        _print_table(result)


def _percent_text(value: Decimal | None) -> str:
    return "-" if value is None else f"{value}%"


def _bar(value: Decimal | None) -> str:
    if value is None:
        return ""
    filled = int((value / 100 * BAR_WIDTH).to_integral_value())
    return "█" * filled + "░" * (BAR_WIDTH - filled)


def _as_json(result: SixWeekReport) -> dict[str, Any]:
    def strata(by: dict[str, Any]) -> dict[str, Any]:
        return {ods: float(v) if isinstance(v, Decimal) else v for ods, v in by.items()}

    return {
        "period": str(result.month),
        "as_at": result.as_at.isoformat(),
        "generated": result.generated.isoformat(),
        "measures": {
            **{
                m.value: {
                    "total": f.total,
                    "by_owner": f.by_owner,
                    "by_requester": f.by_requester,
                }
                for m, f in result.figures.items()
            },
            Measure.PERCENT_WITHIN_6_WEEKS.value: {
                "total": None if result.percent.total is None else float(result.percent.total),
                "by_owner": strata(result.percent.by_owner),
                "by_requester": strata(result.percent.by_requester),
            },
        },
        "exceptions": [
            {**asdict(e), "received": e.received.isoformat(), "due": e.due.isoformat()}
            for e in result.exceptions
        ],
    }


def _write_csv(result: SixWeekReport) -> None:
    """Two sections, each with its own header: the figures (total, then each stratum),
    a blank line, then the exceptions."""
    writer = csv.writer(sys.stdout)
    writer.writerow(["measure", "stratifier", "organisation", "value"])
    for measure, figure in result.figures.items():
        writer.writerow([measure.value, "", "", figure.total])
        for name, by in (("owner", figure.by_owner), ("requester", figure.by_requester)):
            for ods, count in by.items():
                writer.writerow([measure.value, name, ods, count])
    score = result.percent
    percent = Measure.PERCENT_WITHIN_6_WEEKS.value
    writer.writerow([percent, "", "", "" if score.total is None else score.total])
    for name, scores in (("owner", score.by_owner), ("requester", score.by_requester)):
        for ods, value in scores.items():
            writer.writerow([percent, name, ods, value])
    writer.writerow([])
    writer.writerow(EXCEPTION_COLUMNS)
    for e in result.exceptions:
        writer.writerow(
            [
                e.task_id,
                e.owner,
                e.requester,
                e.case_reference,
                e.received,
                e.due,
                e.exception,
                e.reason,
                "" if e.days_late is None else e.days_late,
                e.clock_exception,
            ]
        )


def _strata(figure: Figure, stratifier: str) -> dict[str, int]:
    return figure.by_owner if stratifier == "owner" else figure.by_requester


def _print_table(result: SixWeekReport) -> None:
    """The figures, one bar chart per stratifier (the share within 6 weeks), the exceptions."""
    click.echo(
        f"Six-week report for {result.month}: every request; outstanding as at {result.as_at}"
    )
    click.echo("")
    rows: list[tuple[object, ...]] = [(m.value, f.total) for m, f in result.figures.items()]
    rows.append((Measure.PERCENT_WITHIN_6_WEEKS.value, _percent_text(result.percent.total)))
    table(rows, ("MEASURE", "VALUE"))
    for title, stratifier, by_score in (
        ("By current owner", "owner", result.percent.by_owner),
        ("By requesting LA", "requester", result.percent.by_requester),
    ):
        counts = {m: _strata(f, stratifier) for m, f in result.figures.items()}
        organisations = sorted({ods for by in counts.values() for ods in by})
        if not organisations:
            continue
        click.echo("")
        click.echo(f"{title}:")
        table(
            [
                (
                    ods,
                    *(counts[m].get(ods, 0) for m in STRATA_MEASURES),
                    _percent_text(by_score.get(ods)),
                    _bar(by_score.get(ods)),
                )
                for ods in organisations
            ],
            ("ORG", "RECEIVED", "DUE", "ON TIME", "LATE", "LATE+CE", "OVERDUE", "WITHIN", ""),
        )
    click.echo("")
    click.echo(f"Exceptions ({len(result.exceptions)}):")
    if result.exceptions:
        table(
            [
                (
                    e.task_id,
                    e.owner,
                    e.requester,
                    e.due,
                    e.exception,
                    e.reason or "-",
                    "-" if e.days_late is None else e.days_late,
                    e.clock_exception or "-",
                )
                for e in result.exceptions
            ],
            ("TASK", "OWNER", "LA", "DUE", "EXCEPTION", "REASON", "DAYS LATE", "CLOCK EXCEPTION"),
        )
