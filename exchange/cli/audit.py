"""`exchange audit verify|checkpoint|export`."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import TextIO

import click
from tqdm import tqdm

from exchange.agreements.ods import is_ods_code
from exchange.audit.chain import sealed_count, verify_chain
from exchange.audit.checkpoint import verify_checkpoints
from exchange.audit.events import Actor
from exchange.audit.sealer import seal_all, sign_checkpoint
from exchange.cli import main
from exchange.cli.context import CliContext, pass_context
from exchange.clock import LONDON
from exchange.crypto.keyring import load_keyring
from exchange.patients.nhs_number import is_valid_nhs_number
from exchange.search import DateRange
from exchange.trail.export import (
    ExportFormat,
    ExportScope,
    count_events,
    export_lines,
    record_export,
)


@main.group()
def audit() -> None:
    """The audit trail."""


@audit.command()
@click.option(
    "--from",
    "start",
    default=1,
    show_default=True,
    type=click.IntRange(1),
    help="First sequence to check.",
)
@pass_context
def verify(cli: CliContext, start: int) -> None:
    """Recompute the hash chain and check every signed checkpoint.

    Records still waiting to be sealed are sealed first, as the server would. Exits 1 and
    names the first broken sequence if anything was modified, removed, inserted or reordered.
    """
    database = cli.database()
    seal_all(database)
    keyring = load_keyring(cli.settings.keyring_path)
    with database.transaction() as session:
        total = sealed_count(session, start)
        with tqdm(total=total, unit="rec", desc="verifying", disable=None, file=sys.stderr) as bar:
            result = verify_chain(session, start, progress=bar.update)
        problems = verify_checkpoints(session, keyring.public_key) if result.ok else []
    if not result.ok:
        click.echo(
            f"error: the audit chain is broken at sequence {result.broken_sequence}: "
            f"{result.problem}.",
            err=True,
        )
        sys.exit(1)
    if problems:
        for problem in problems:
            click.echo(
                f"error: checkpoint {problem.checkpoint_id} (sequence {problem.sequence}): "
                f"{problem.problem}.",
                err=True,
            )
        sys.exit(1)
    click.echo(
        f"audit chain verified: {result.checked} record(s) from sequence {start} "
        f"to {result.last_sequence}"
    )


@audit.command()
@pass_context
def checkpoint(cli: CliContext) -> None:
    """Sign the current head of the chain with the audit signing key."""
    made = sign_checkpoint(cli.database(), load_keyring(cli.settings.keyring_path), cli.clock.now())
    if made is None:
        click.echo("the audit chain is empty: nothing to sign")
    else:
        click.echo(
            f"checkpoint signed at sequence {made.sequence} ({made.hash[:16]}…) with {made.key_id}"
        )


@audit.command("export")
@click.option(
    "--from", "start", required=True, type=click.DateTime(["%Y-%m-%d"]), help="First day (London)."
)
@click.option(
    "--to",
    "end",
    required=True,
    type=click.DateTime(["%Y-%m-%d"]),
    help="Last day (London), included.",
)
@click.option(
    "--org", "organisation", help="Only events of this organisation (acting, or custodian)."
)
@click.option("--patient", "nhs_number", help="Only events about this child (NHS number).")
@click.option("--format", "fmt", type=click.Choice(["ndjson", "csv"]), required=True)
@click.option(
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="A new file (never overwritten).",
)
@pass_context
def export(
    cli: CliContext,
    start: datetime,
    end: datetime,
    organisation: str | None,
    nhs_number: str | None,
    fmt: ExportFormat,
    output: Path | None,
) -> None:
    """Export audit events as FHIR NDJSON or CSV, streamed (progress bar on a terminal)."""
    if end < start:
        raise click.BadParameter("--to is before --from")
    if nhs_number is not None and not is_valid_nhs_number(nhs_number):
        raise click.BadParameter(
            "not an NHS number (ten digits with a valid check digit)", param_hint="--patient"
        )
    if organisation is not None and not is_ods_code(organisation):
        raise click.BadParameter("not an ODS code", param_hint="--org")
    first = datetime.combine(start.date(), time(), LONDON)
    after = datetime.combine(end.date() + timedelta(days=1), time(), LONDON)
    scope = ExportScope(
        DateRange("eq", first.astimezone(UTC), after.astimezone(UTC)), organisation, nhs_number
    )
    database = cli.database()
    with database.transaction() as session:
        record_export(session, Actor.operator(), scope, fmt, cli.clock.now())
    with database.transaction() as session:
        total = count_events(session, scope)
        target = _new_file(output) if output else None
        stream = target or sys.stdout
        try:
            with tqdm(
                total=total, unit="event", desc="exporting", disable=None, file=sys.stderr
            ) as bar:
                for line in export_lines(session, scope, fmt, progress=bar.update):
                    stream.write(line)
        finally:
            if target is not None:
                target.close()
    seal_all(database)
    if output is not None:
        click.echo(f"exported {total} event(s) to {output}", err=True)


def _new_file(path: Path) -> TextIO:
    """Open a new file for an export: an existing one (someone's earlier export) is never
    replaced, and the exclusive creation leaves no window for a race."""
    try:
        return path.open("x", encoding="utf-8", newline="")
    except FileExistsError:
        raise FileExistsError(f"{path} exists already: an export never overwrites a file") from None
