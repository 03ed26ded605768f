"""`exchange audit verify|checkpoint`."""

from __future__ import annotations

import sys

import click
from tqdm import tqdm

from exchange.audit.chain import sealed_count, verify_chain
from exchange.audit.checkpoint import create_checkpoint, verify_checkpoints
from exchange.audit.events import Action, Actor, AuditEntry, AuditKind, Outcome
from exchange.audit.sealer import seal_all
from exchange.audit.service import record
from exchange.cli import main
from exchange.cli.context import CliContext, pass_context
from exchange.crypto.keyring import load_keyring


@main.group()
def audit() -> None:
    """The audit trail."""


@audit.command()
@click.option("--from", "start", default=1, show_default=True, type=click.IntRange(1), help="First sequence to check.")
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
        click.echo(f"error: the audit chain is broken at sequence {result.broken_sequence}: {result.problem}.", err=True)
        sys.exit(1)
    if problems:
        for problem in problems:
            click.echo(
                f"error: checkpoint {problem.checkpoint_id} (sequence {problem.sequence}): {problem.problem}.", err=True
            )
        sys.exit(1)
    click.echo(f"audit chain verified: {result.checked} record(s) from sequence {start} to {result.last_sequence}")


@audit.command()
@pass_context
def checkpoint(cli: CliContext) -> None:
    """Sign the current head of the chain with the audit signing key."""
    database = cli.database()
    seal_all(database)
    keyring = load_keyring(cli.settings.keyring_path)
    with database.transaction() as session:
        made = create_checkpoint(session, keyring, cli.clock.now())
        if made is not None:
            record(
                session,
                AuditEntry(
                    kind=AuditKind.AUDIT_CHECKPOINT,
                    action=Action.EXECUTE,
                    outcome=Outcome.SUCCESS,
                    actor=Actor.operator(),
                    details={"sequence": str(made.sequence), "hash": made.hash},
                ),
                cli.clock,
            )
    seal_all(database)
    if made is None:
        click.echo("the audit chain is empty: nothing to sign")
    else:
        click.echo(f"checkpoint signed at sequence {made.sequence} ({made.hash[:16]}…) with {made.key_id}")
