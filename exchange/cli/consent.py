"""`exchange consent explain`: the consent decision, explained for an operator."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import click

from exchange.audit.events import Action, Actor, AuditEntry, AuditKind, Entity, Outcome
from exchange.audit.sealer import seal_all
from exchange.audit.service import record
from exchange.cli import main
from exchange.cli.context import CliContext, pass_context
from exchange.clock import LONDON
from exchange.codes import Purpose
from exchange.consent.explain import explain as explain_decision
from exchange.consent.service import evaluate
from exchange.patients.nhs_number import is_valid_nhs_number, mask
from exchange.patients.service import find_by_nhs_number


@main.group()
def consent() -> None:
    """Consent decisions."""


@consent.command()
@click.option("--nhs-number", required=True, help="The child's or young person's NHS number.")
@click.option("--recipient", required=True, help="ODS code of the organisation that would receive the information.")
@click.option("--purpose", required=True, type=click.Choice([p.value for p in Purpose]))
@click.option("--at", "at_text", help="A date (end of that London day) or an ISO date-time; default now.")
@pass_context
def explain(cli: CliContext, nhs_number: str, recipient: str, purpose: str, at_text: str | None) -> None:
    """Which consents were considered, which were ignored and why, and which one decided."""
    if not is_valid_nhs_number(nhs_number):
        raise click.ClickException("the NHS number is not valid (10 digits with a Modulus 11 check digit)")
    at = _instant(at_text, cli.clock.now())
    database = cli.database()
    with database.transaction() as session:
        patient = find_by_nhs_number(session, nhs_number)
        if patient is None:
            raise click.ClickException("no patient is registered with that NHS number")
        decision = evaluate(session, patient, recipient, purpose, at)
        record(
            session,
            AuditEntry(
                kind=AuditKind.OPERATION,
                action=Action.EXECUTE,
                outcome=Outcome.SUCCESS,
                actor=Actor.operator(),
                outcome_desc="permit" if decision.permit else f"deny: {decision.reason}",
                entities=(Entity(f"Patient/{patient.id}", "patient"),),
                patient_id=patient.id,
                details={"operation": "consent-explain", "recipient": recipient, "purpose": purpose},
            ),
            cli.clock,
        )
    seal_all(database)
    click.echo(explain_decision(decision, mask(nhs_number), recipient, purpose, at))


def _instant(text: str | None, now: datetime) -> datetime:
    if text is None:
        return now
    try:
        if len(text) == 10:
            day = datetime.fromisoformat(text).date()
            return datetime.combine(day + timedelta(days=1), time(), LONDON) - timedelta(microseconds=1)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.ClickException(f"--at {text!r} is not a date (YYYY-MM-DD) or ISO date-time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=LONDON)
