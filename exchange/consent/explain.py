"""`exchange consent explain`: the consent decision written out for an operator.

The NHS number arrives already masked: this text may be pasted into tickets, and
identifiers of children must not travel with it.
"""

from __future__ import annotations

from datetime import datetime

from exchange.clock import london_date
from exchange.consent.decision import Considered, Decision
from exchange.consent.records import UNDATED, ConsentRecord, DecisionMaker


def describe_maker(maker: DecisionMaker) -> str:
    """Who made a decision, in words: performer, relationship and basis."""
    match maker.performer:
        case "patient":
            who = "the child or young person themself"
        case "related-person":
            who = f"related person ({maker.relationship or 'no recognised relationship'})"
        case "organization":
            who = (
                f"organisation {maker.organisation} "
                f"({maker.relationship or 'no recognised relationship'})"
            )
        case _:
            who = "an unrecognised performer"
    return f"{who}, basis {maker.basis or 'missing'}"


def _made_on(consent: ConsentRecord) -> str:
    return "undated" if consent.date_time == UNDATED else london_date(consent.date_time).isoformat()


def _outcome(item: Considered) -> str:
    # A Consent not ignored either decided or agreed: its note says which.
    return item.note if item.ignored is None else f"ignored ({item.ignored}): {item.note}"


def explain(
    decision: Decision, nhs_number_masked: str, recipient: str, purpose: str, at: datetime
) -> str:
    """Multi-line text: the subject's life stage, every Consent's part, and the result."""
    lines = [
        f"Consent decision for NHS number {nhs_number_masked}",
        f"  recipient {recipient}, purpose {purpose}, at {at.isoformat()} "
        f"(London date {london_date(at)})",
        f"  life stage: {decision.life_stage}; school-leaving date {decision.school_leaving_date}",
        "",
        f"Consents considered ({len(decision.considered)}, oldest first):",
    ]
    if not decision.considered:
        lines.append("  none recorded")
    for number, item in enumerate(decision.considered, start=1):
        consent = item.consent
        purposes = ", ".join(sorted(consent.purposes)) or "none"
        lines.append(
            f"  {number}. Consent/{consent.id}  {_made_on(consent)}  {consent.status}  "
            f"{consent.provision_type} [{purposes}]"
        )
        lines.append(f"     maker: {describe_maker(consent.maker)}")
        lines.append(f"     {_outcome(item)}")
    lines.append("")
    result = "PERMIT" if decision.permit else f"DENY {decision.reason}"
    if decision.deciding is not None:
        result += f" (deciding Consent/{decision.deciding.id})"
    lines.append(f"Result: {result}")
    return "\n".join(lines)
