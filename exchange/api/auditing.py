"""Who is asking, for the use cases and the audit trail: the `Caller` of an authenticated
request (from its token, address, purpose and justification headers and request id), the
interaction it makes, and the record of a refused request (`audit.record_refusal`)."""

from __future__ import annotations

import logging

from flask import g, request

from exchange.api.context import services
from exchange.audit.events import Actor, AuditEntry, AuditKind, Outcome
from exchange.audit.service import record_refusal
from exchange.auth.grant import AccessGrant
from exchange.caller import Caller
from exchange.codes import BREAK_GLASS_PURPOSES, Purpose
from exchange.errors import Subject

log = logging.getLogger(__name__)

_METHOD_KINDS = {
    "POST": AuditKind.CREATE,
    "PUT": AuditKind.UPDATE,
    "PATCH": AuditKind.PATCH,
    "DELETE": AuditKind.DELETE,
}


def _stated_purpose() -> str | None:
    """`X-Purpose-Of-Use`, if it names a purpose code."""
    value = request.headers.get("X-Purpose-Of-Use", "").strip()
    return value if value in {p.value for p in Purpose} else None


def request_purpose() -> str:
    """The purpose of use: `X-Purpose-Of-Use` if it names a purpose code, else ehcna-advice."""
    return _stated_purpose() or Purpose.EHCNA_ADVICE.value


def interaction_kind() -> AuditKind:
    """The FHIR interaction of the current request, from its method and path."""
    if request.method in _METHOD_KINDS:
        return _METHOD_KINDS[request.method]
    parts = [p for p in request.path.split("/") if p][1:]  # drop "fhir"
    if any(p.startswith("$") for p in parts):
        return AuditKind.OPERATION
    if "_history" in parts:
        return AuditKind.VREAD if parts[-1] != "_history" else AuditKind.HISTORY
    return AuditKind.READ if len(parts) >= 2 else AuditKind.SEARCH


def request_caller() -> Caller:
    """The use cases' Caller for the current (authenticated) request."""
    grant: AccessGrant = g.caller
    return Caller(
        organisation_id=grant.organisation_id,
        organisation=grant.organisation,
        role=grant.role,
        break_glass_allowed=grant.break_glass,
        actor=current_actor(grant),
        purpose=request_purpose(),
        purpose_assumed=_stated_purpose() is None,
        justification=request.headers.get("X-Justification"),
        request_id=g.get("request_id"),
    )


def search_query() -> str | None:
    """The query string of a search, as its audit record keeps it (None when empty)."""
    return request.query_string.decode("utf-8", "replace") or None


def current_actor(caller: AccessGrant | None = None) -> Actor:
    """The Actor of the current request."""
    caller = caller or g.get("caller")
    purpose = request_purpose()
    if caller is None:
        return Actor(user="anonymous", address=request.remote_addr, purpose=purpose)
    return Actor(
        client_id=caller.client_id,
        organisation=caller.organisation,
        address=request.remote_addr,
        purpose=purpose,
        break_glass=purpose in BREAK_GLASS_PURPOSES,
        token_jti=caller.token_jti,
    )


def audit_refusal(status: int, reason: str, subject: Subject) -> None:
    """Record a refused FHIR request (after its own transaction has ended) with what the
    refusal concerned: `audit.record_refusal`, the one way every front door does it."""
    ctx = services()
    record_refusal(
        ctx.database,
        AuditEntry(
            kind=interaction_kind(),
            action=interaction_kind().action,
            outcome=Outcome.for_status(status),
            actor=current_actor(),
            outcome_desc=reason,
            entities=subject.entities,
            patient_id=subject.patient_id,
            custodian=subject.custodian,
            request_id=g.get("request_id"),
        ),
        ctx.clock,
    )
