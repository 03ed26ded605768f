"""Who asks a use case: an organisation acting through an OAuth client or a console user,
for a purpose, with what the audit trail needs to name them (`audit.md`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from typing import Any

from exchange.audit.events import Actor, AuditEntry, AuditKind, Outcome
from exchange.codes import BREAK_GLASS_PURPOSES, Purpose


@dataclass(frozen=True, slots=True)
class Caller:
    """The organisation behind a request and the person or system acting for it."""

    organisation_id: uuid.UUID
    #: ODS code.
    organisation: str
    #: `organisation-role`: provider, icb or la.
    role: str
    #: Whether the organisation is registered with `break_glass: true` (`access.md`).
    break_glass_allowed: bool
    #: How the audit trail names who acted (client or console user, address, token).
    actor: Actor
    #: The purpose of use (`X-Purpose-Of-Use`; ehcna-advice unless said otherwise).
    purpose: str = Purpose.EHCNA_ADVICE.value
    #: The caller did not say its purpose (ehcna-advice was assumed): a request's documents
    #: are then read under the request's own purpose (`advice-requests.md`).
    purpose_assumed: bool = False
    #: Why a break-glass read is needed (`X-Justification`).
    justification: str | None = None
    #: The request id, echoed in the audit record and the log line.
    request_id: str | None = None

    def audit_entry(
        self,
        kind: AuditKind,
        outcome: Outcome = Outcome.SUCCESS,
        purpose: str | None = None,
        **fields: Any,
    ) -> AuditEntry:
        """An audit record of this caller's `kind` of interaction (`fields`: entities,
        patient_id, custodian, outcome_desc, query, details, justification, review_reason);
        `purpose`: the one the use case acted under, when it is not the caller's own."""
        actor = replace(self.actor, purpose=purpose) if purpose is not None else self.actor
        return AuditEntry(
            kind=kind,
            action=kind.action,
            outcome=outcome,
            actor=actor,
            request_id=self.request_id,
            **fields,
        )

    @property
    def break_glass(self) -> bool:
        """Whether the purpose is safeguarding or a court order (consent is skipped)."""
        return self.purpose in BREAK_GLASS_PURPOSES
