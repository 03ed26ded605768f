"""`exchange sweep` and `exchange keys rotate`."""

from __future__ import annotations

import sys
from datetime import date, datetime
from datetime import time as clock_time

import click
from tqdm import tqdm

from exchange.audit.sealer import seal_all
from exchange.backends import blob_store
from exchange.cli import main
from exchange.cli.context import CliContext, pass_context
from exchange.clock import LONDON
from exchange.documents.housekeeping import apply_retention, sweep
from exchange.key_rotation import live_data_keys, rotate_keys


@main.command("sweep")
@pass_context
def sweep_command(cli: CliContext) -> None:
    """Remove orphan blobs and Binaries not attached within 24 hours."""
    database = cli.database()
    result = sweep(database, blob_store(cli.settings), cli.clock.now())
    seal_all(database)
    click.echo(
        f"removed {result.orphan_blobs} orphan blob(s) and "
        f"{result.expired_uploads} expired upload(s)"
        + _abandoned(result.abandoned_writes)
        + _left(result.left)
    )


def _abandoned(abandoned: int) -> str:
    if not abandoned:
        return ""
    return f", and what {abandoned} upload(s) that never finished left in the store"


def _left(left: int) -> str:
    if not left:
        return ""
    return (
        f"; {left} blob(s) of destroyed keys could not be deleted now (the store did not "
        "answer) and go at the next sweep"
    )


@main.group()
def retention() -> None:
    """Document retention."""


@retention.command("apply")
@click.option(
    "--before",
    "before_text",
    required=True,
    help="Crypto-shred documents dated before this date (YYYY-MM-DD).",
)
@click.option("--dry-run", is_flag=True, help="Only count what would be shredded.")
@pass_context
def retention_apply(cli: CliContext, before_text: str, dry_run: bool) -> None:
    """Destroy the keys and blobs of documents past retention; keep metadata and audit."""
    try:
        day = date.fromisoformat(before_text)
    except ValueError:
        raise click.ClickException(f"--before {before_text!r} is not a date (YYYY-MM-DD)") from None
    before = datetime.combine(day, clock_time(), LONDON)
    database = cli.database()
    result = apply_retention(database, blob_store(cli.settings), before, cli.clock.now(), dry_run)
    seal_all(database)
    verb = "would crypto-shred" if dry_run else "crypto-shredded"
    click.echo(
        f"{verb} {result.binaries} document content(s) of {result.documents} document(s) "
        f"dated before {day}" + _left(result.left)
    )


@main.group()
def keys() -> None:
    """Key-encryption keys."""


@keys.command()
@pass_context
def rotate(cli: CliContext) -> None:
    """Add a new KEK version to the local keyring and re-wrap every data key with it."""
    if cli.settings.key_provider != "local":
        raise click.ClickException(
            f"{cli.settings.key_provider} keys are rotated in the key service itself "
            "(KMS key rotation, "
            "Vault `transit/keys/<name>/rotate`); nothing to do here"
        )
    database = cli.database()
    with tqdm(
        total=live_data_keys(database),
        unit="key",
        desc="re-wrapping",
        disable=None,
        file=sys.stderr,
    ) as bar:
        rotation = rotate_keys(database, cli.settings.keyring_path, cli.clock.now(), bar.update)
    seal_all(database)
    not_opened = (
        f"; {rotation.not_opened} data key(s) did not open and were left as they were (see the log)"
        if rotation.not_opened
        else ""
    )
    click.echo(
        f"KEK version {rotation.kek_version} added; {rotation.data_keys} data key(s) "
        f"re-wrapped" + not_opened
    )
