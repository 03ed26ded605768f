"""Registry reads for API clients: organisations and data-sharing agreements as FHIR
`Organization` and `Contract`, read-only and audited (`api.md`)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from exchange.agreements.models import Agreement, AgreementParty, Organisation
from exchange.agreements.resources import contract_resource, organization_resource
from exchange.audit.events import AuditKind, Entity
from exchange.audit.service import record
from exchange.caller import Caller
from exchange.errors import NotFound
from exchange.search import Found, Paging, keyset_page


def read_organisation(
    session: Session, caller: Caller, organisation_id: uuid.UUID, now: datetime
) -> dict[str, Any]:
    """One organisation as FHIR `Organization`."""
    organisation = session.get(Organisation, organisation_id)
    if organisation is None:
        raise NotFound("Organization", organisation_id)
    record(
        session,
        caller.audit_entry(AuditKind.READ, entities=(Entity(f"Organization/{organisation_id}"),)),
        at=now,
    )
    return organization_resource(organisation)


def search_organisations(
    session: Session,
    caller: Caller,
    ods: str | None,
    role: str | None,
    paging: Paging,
    query: str | None,
    now: datetime,
) -> Found:
    """Organisations by ODS code and role, in ODS order."""
    wanted = select(Organisation)
    if ods is not None:
        wanted = wanted.where(Organisation.ods == ods)
    if role is not None:
        wanted = wanted.where(Organisation.role == role)
    total = session.scalar(select(func.count()).select_from(wanted.subquery())) or 0
    page = keyset_page(
        session,
        wanted,
        paging,
        moment=Organisation.ods,
        tiebreak=Organisation.id,
        parse_moment=str,
        parse_tiebreak=uuid.UUID,
    )
    record(session, caller.audit_entry(AuditKind.SEARCH, query=query), at=now)
    return Found([organization_resource(row) for row in page.rows], total, page.next)


def read_agreement(
    session: Session, caller: Caller, agreement_id: uuid.UUID, now: datetime
) -> dict[str, Any]:
    """One data-sharing agreement as FHIR `Contract`."""
    agreement = session.get(Agreement, agreement_id)
    if agreement is None:
        raise NotFound("Contract", agreement_id)
    record(
        session,
        caller.audit_entry(
            AuditKind.READ, entities=(Entity(f"Contract/{agreement_id}", "agreement"),)
        ),
        at=now,
    )
    return contract_resource(agreement)


def search_agreements(
    session: Session,
    caller: Caller,
    status: str | None,
    signer: str | None,
    paging: Paging,
    query: str | None,
    now: datetime,
) -> Found:
    """Agreements by status and by a signing organisation's ODS code, in agreement-id order."""
    wanted = select(Agreement)
    if status is not None:
        wanted = wanted.where(Agreement.status == status)
    if signer is not None:
        wanted = wanted.where(
            Agreement.id.in_(
                select(AgreementParty.agreement_id)
                .join(Organisation, Organisation.id == AgreementParty.organisation_id)
                .where(Organisation.ods == signer)
            )
        )
    total = session.scalar(select(func.count()).select_from(wanted.subquery())) or 0
    page = keyset_page(
        session,
        wanted,
        paging,
        moment=Agreement.agreement_id,
        tiebreak=Agreement.id,
        parse_moment=str,
        parse_tiebreak=uuid.UUID,
    )
    record(session, caller.audit_entry(AuditKind.SEARCH, query=query), at=now)
    return Found([contract_resource(row) for row in page.rows], total, page.next)
