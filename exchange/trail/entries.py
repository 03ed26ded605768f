"""One audit event as a line of an access log: the questions an IG lead asks of it (who,
from which organisation, did what to which child's record, for what purpose, allowed or
not, and why). The console's access log and the CSV export show the same columns."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import orjson

from exchange.audit.models import AuditRecord

OUTCOMES: Final = {"0": "success", "4": "refused", "8": "failed", "12": "failed"}


@dataclass(frozen=True, slots=True)
class LogEntry:
    """An audit event, flattened."""

    recorded: datetime
    event_id: str
    organisation: str
    #: The client id or console user who acted ("" when unknown).
    who: str
    #: The AuditKind value (`rest:read`, `console:login`, ...).
    interaction: str
    action: str
    nhs_number: str
    #: The first resource the event names other than the Patient.
    resource: str
    purpose: str
    outcome: str
    reason: str
    break_glass: bool
    justification: str
    custodian: str
    request_id: str
    review_reason: str

    @property
    def refused(self) -> bool:
        """Whether the request was refused or failed."""
        return self.outcome != "success"


def log_entry(event: AuditRecord, nhs_number: str | None) -> LogEntry:
    """The access-log line of a stored event (`nhs_number`: its patient's, if any)."""
    payload: dict[str, Any] = orjson.loads(event.payload)
    references = [
        e["what"]["reference"]
        for e in payload.get("entity", [])
        if "reference" in e.get("what", {}) and not e["what"]["reference"].startswith("Patient/")
    ]
    details = {
        d.get("type"): d.get("valueString")
        for e in payload.get("entity", [])
        for d in e.get("detail", [])
    }
    return LogEntry(
        recorded=event.recorded,
        event_id=str(event.event_id),
        organisation=event.agent_org or "",
        who=event.agent_client_id or event.agent_user or "",
        interaction=event.kind,
        action=event.action,
        nhs_number=nhs_number or "",
        resource=references[0] if references else "",
        purpose=event.purpose or "",
        outcome=OUTCOMES.get(event.outcome, event.outcome),
        reason=str(payload.get("outcomeDesc", "")),
        break_glass=event.break_glass,
        justification=details.get("break-glass-justification") or "",
        custodian=event.custodian_org or "",
        request_id=event.request_id or "",
        review_reason=event.review_reason or "",
    )
