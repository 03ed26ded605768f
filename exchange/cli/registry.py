"""Registry administration: `exchange org|client|agreement|user ...`.

Each command builds the same entry a bootstrap file would hold and goes through the same
validation and upsert, so the CLI and the bootstrap file can never disagree on a rule.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from exchange.audit.events import Actor
from exchange.audit.sealer import seal_all
from exchange.cli import main
from exchange.cli.context import CliContext, pass_context
from exchange.registry import service
from exchange.registry.specs import MIN_PASSWORD_LENGTH


def _apply(cli: CliContext, section: str, entry: dict[str, Any]) -> None:
    database = cli.database()
    with database.transaction() as session:
        changes = service.register_entry(session, section, entry, cli.clock, Actor.operator())
    seal_all(database)
    for change in changes:
        click.echo(str(change))
    if not changes:
        click.echo("no changes")


def table(rows: Sequence[Sequence[object]], headers: Sequence[str]) -> None:
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        click.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    password: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


@main.group()
def org() -> None:
    """Organisations."""


@org.command("add")
@click.argument("ods")
@click.option("--name", required=True)
@click.option("--role", required=True, type=click.Choice(["provider", "icb", "la"]))
@click.option("--commissioner", help="ODS code of the commissioning ICB (providers).")
@click.option(
    "--break-glass/--no-break-glass",
    default=False,
    help="May use safeguarding / court-order access.",
)
@pass_context
def org_add(
    cli: CliContext, ods: str, name: str, role: str, commissioner: str | None, break_glass: bool
) -> None:
    """Register (or update) an organisation by ODS code."""
    entry: dict[str, Any] = {"ods": ods, "name": name, "role": role, "break_glass": break_glass}
    if commissioner:
        entry["commissioner"] = commissioner
    _apply(cli, "organisations", entry)


@org.command("list")
@pass_context
def org_list(cli: CliContext) -> None:
    """List organisations."""
    with cli.database().transaction() as session:
        rows = [
            (o.ods, o.role, o.name, o.commissioner_ods or "", "yes" if o.break_glass else "")
            for o in service.list_organisations(session)
        ]
    table(rows, ("ODS", "ROLE", "NAME", "COMMISSIONER", "BREAK-GLASS"))


@main.group()
def client() -> None:
    """OAuth clients."""


@client.command("add")
@click.argument("client_id")
@click.option("--org", "organisation", required=True, help="ODS code of the client's organisation.")
@click.option(
    "--scope", "scopes", multiple=True, required=True, help="A SMART system scope (repeat)."
)
@click.option(
    "--jwks",
    "jwks_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="File with the public JWKS.",
)
@click.option("--jwks-uri", help="https URL of the client's JWKS.")
@pass_context
def client_add(
    cli: CliContext,
    client_id: str,
    organisation: str,
    scopes: tuple[str, ...],
    jwks_file: Path | None,
    jwks_uri: str | None,
) -> None:
    """Register (or update) an OAuth client with its public keys."""
    entry: dict[str, Any] = {
        "client_id": client_id,
        "organisation": organisation,
        "scopes": list(scopes),
    }
    if jwks_file is not None:
        try:
            entry["jwks"] = json.loads(jwks_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise click.ClickException(f"{jwks_file} is not a readable JSON Web Key Set") from None
    if jwks_uri is not None:
        entry["jwks_uri"] = jwks_uri
    _apply(cli, "clients", entry)


@client.command("list")
@pass_context
def client_list(cli: CliContext) -> None:
    """List clients."""
    with cli.database().transaction() as session:
        rows = [
            (
                c.client_id,
                c.organisation.ods,
                "enabled" if c.enabled else "disabled",
                " ".join(c.scopes),
            )
            for c in service.list_clients(session)
        ]
    table(rows, ("CLIENT", "ORG", "STATE", "SCOPES"))


@client.command("disable")
@click.argument("client_id")
@pass_context
def client_disable(cli: CliContext, client_id: str) -> None:
    """Disable a client: its token requests are refused from now on."""
    with cli.database().transaction() as session:
        change = service.set_client_enabled(session, client_id, False, cli.clock, Actor.operator())
    click.echo(str(change) if change else f"client {client_id}: already disabled")


@main.group()
def agreement() -> None:
    """Data-sharing agreements."""


@agreement.command("add")
@click.argument("agreement_id")
@click.option("--title", required=True)
@click.option(
    "--party", "parties", multiple=True, required=True, help="ODS code of a party (repeat)."
)
@click.option(
    "--purpose", "purposes", multiple=True, required=True, help="A purpose code (repeat)."
)
@click.option("--start", required=True, help="First day in force (YYYY-MM-DD).")
@click.option("--end", help="Last day in force (YYYY-MM-DD).")
@pass_context
def agreement_add(
    cli: CliContext,
    agreement_id: str,
    title: str,
    parties: tuple[str, ...],
    purposes: tuple[str, ...],
    start: str,
    end: str | None,
) -> None:
    """Register (or update) a data-sharing agreement."""
    entry: dict[str, Any] = {
        "id": agreement_id,
        "title": title,
        "parties": list(parties),
        "purposes": list(purposes),
        "start": start,
    }
    if end:
        entry["end"] = end
    _apply(cli, "agreements", entry)


@agreement.command("terminate")
@click.argument("agreement_id")
@click.option("--revoke", is_flag=True, help="Record it as revoked rather than terminated.")
@pass_context
def agreement_terminate(cli: CliContext, agreement_id: str, revoke: bool) -> None:
    """End an agreement: it no longer allows any sharing."""
    status = "revoked" if revoke else "terminated"
    with cli.database().transaction() as session:
        change = service.set_agreement_status(
            session, agreement_id, status, cli.clock, Actor.operator()
        )
    click.echo(str(change) if change else f"agreement {agreement_id}: already {status}")


@agreement.command("list")
@pass_context
def agreement_list(cli: CliContext) -> None:
    """List agreements."""
    with cli.database().transaction() as session:
        rows = [
            (
                a.agreement_id,
                a.status,
                a.start,
                a.end or "",
                " ".join(a.party_ods),
                " ".join(a.purpose_codes),
            )
            for a in service.list_agreements(session)
        ]
    table(rows, ("AGREEMENT", "STATUS", "START", "END", "PARTIES", "PURPOSES"))


@main.group()
def user() -> None:
    """Console users."""


@user.command("add")
@click.argument("username")
@click.option("--org", "organisation", required=True)
@click.option(
    "--role", "roles", multiple=True, required=True, type=click.Choice(["ig-lead", "dco", "admin"])
)
@click.option(
    "--password-stdin", is_flag=True, help="Read the initial password from standard input."
)
@pass_context
def user_add(
    cli: CliContext, username: str, organisation: str, roles: tuple[str, ...], password_stdin: bool
) -> None:
    """Register a console user (they change the password and set up TOTP at first login)."""
    password = _read_password(password_stdin)
    _apply(
        cli,
        "users",
        {
            "username": username,
            "organisation": organisation,
            "roles": list(roles),
            "password": password,
        },
    )


@user.command("disable")
@click.argument("username")
@pass_context
def user_disable(cli: CliContext, username: str) -> None:
    """Disable a console user."""
    with cli.database().transaction() as session:
        change = service.set_user_enabled(session, username, False, cli.clock, Actor.operator())
    click.echo(str(change) if change else f"user {username}: already disabled")


@user.command("reset-password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the new password from standard input.")
@pass_context
def user_reset_password(cli: CliContext, username: str, password_stdin: bool) -> None:
    """Set a new password; the user must change it and set up TOTP again at next login."""
    password = _read_password(password_stdin)
    if len(password) < MIN_PASSWORD_LENGTH:
        raise click.ClickException(
            f"the password must be at least {MIN_PASSWORD_LENGTH} characters"
        )
    with cli.database().transaction() as session:
        change = service.set_user_password(session, username, password, cli.clock, Actor.operator())
    click.echo(str(change))


@user.command("reset-totp")
@click.argument("username")
@pass_context
def user_reset_totp(cli: CliContext, username: str) -> None:
    """Forget the user's TOTP secret (a lost phone): they set up a new one at next sign-in."""
    with cli.database().transaction() as session:
        change = service.reset_user_totp(session, username, cli.clock, Actor.operator())
    click.echo(str(change))
