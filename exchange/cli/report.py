"""`exchange report overdue`: open advice requests past their statutory due date."""

from __future__ import annotations

import csv
import json
import sys
from dataclasses import asdict

import click

from exchange.advice_requests.reports import overdue_report
from exchange.audit.events import Actor
from exchange.audit.sealer import seal_all
from exchange.cli import main
from exchange.cli.context import CliContext, pass_context
from exchange.cli.registry import table
from exchange.clock import london_date


@main.group()
def report() -> None:
    """Reports on advice requests."""


@report.command()
@click.option("--owner", help="Only requests owned by this ODS code.")
@click.option("--requester", help="Only requests made by this ODS code.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
)
@pass_context
def overdue(cli: CliContext, owner: str | None, requester: str | None, fmt: str) -> None:
    """Open requests past their due date (Europe/London), most overdue first."""
    database = cli.database()
    now = cli.clock.now()
    with database.transaction() as session:
        rows = overdue_report(session, Actor.operator(), owner, requester, now)
    seal_all(database)
    if fmt == "json":
        click.echo(json.dumps([asdict(r) for r in rows], default=str, indent=2))
    elif fmt == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(
            [
                "task",
                "owner",
                "requester",
                "type",
                "status",
                "received",
                "due",
                "days_overdue",
                "case_reference",
            ]
        )
        for r in rows:
            writer.writerow(
                [
                    r.task_id,
                    r.owner,
                    r.requester,
                    r.task_type,
                    r.status,
                    r.received,
                    r.due,
                    r.days_overdue,
                    r.case_reference,
                ]
            )
    else:
        table(
            [
                (r.task_id, r.owner, r.requester, r.status, r.due, r.days_overdue, r.case_reference)
                for r in rows
            ],
            ("TASK", "OWNER", "REQUESTER", "STATUS", "DUE", "DAYS OVERDUE", "CASE REF"),
        )
        click.echo(f"{len(rows)} overdue request(s) on {london_date(now)}")
