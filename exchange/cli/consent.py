"""`exchange consent explain`: the consent decision, explained for an operator."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import click

from exchange.audit.events import Actor
from exchange.audit.sealer import seal_all
from exchange.cli import main
from exchange.cli.context import CliContext, pass_context
from exchange.clock import LONDON
from exchange.codes import Purpose
from exchange.consent.explain import explain as explain_decision
from exchange.consent.service import explain_consent
from exchange.errors import NotFound
from exchange.patients.nhs_number import is_valid_nhs_number, mask


@main.group()
def consent() -> None:
    """Consent decisions."""


@consent.command()
@click.option("--nhs-number", required=True, help="The child's or young person's NHS number.")
@click.option(
    "--recipient",
    required=True,
    help="ODS code of the organisation that would receive the information.",
)
@click.option("--purpose", required=True, type=click.Choice([p.value for p in Purpose]))
@click.option(
    "--at", "at_text", help="A date (end of that London day) or an ISO date-time; default now."
)
@pass_context
def explain(
    cli: CliContext, nhs_number: str, recipient: str, purpose: str, at_text: str | None
) -> None:
    """Which consents were considered, which were ignored and why, and which one decided."""
    if not is_valid_nhs_number(nhs_number):
        raise click.ClickException(
            "the NHS number is not valid (10 digits with a Modulus 11 check digit)"
        )
    now = cli.clock.now()
    at = _instant(at_text, now)
    database = cli.database()
    try:
        with database.transaction() as session:
            decision = explain_consent(
                session, Actor.operator(), nhs_number, recipient, purpose, at, now
            )
    except NotFound:
        raise click.ClickException("no patient is registered with that NHS number") from None
    seal_all(database)
    click.echo(explain_decision(decision, mask(nhs_number), recipient, purpose, at))


def _instant(text: str | None, now: datetime) -> datetime:
    if text is None:
        return now
    try:
        if len(text) == 10:
            day = datetime.fromisoformat(text).date()
            return datetime.combine(day + timedelta(days=1), time(), LONDON) - timedelta(
                microseconds=1
            )
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.ClickException(
            f"--at {text!r} is not a date (YYYY-MM-DD) or ISO date-time"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=LONDON)
