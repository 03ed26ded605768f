"""Data-sharing agreements as access rules (`access.md`): "A and B may exchange for purpose
P at time t" holds only if some executed DSA in force at t lists both and covers P."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import date

from sqlalchemy import ColumnElement, Select, SQLColumnExpression, and_, bindparam, or_, select
from sqlalchemy.orm import Session, aliased

from exchange.agreements.models import Agreement, AgreementParty, AgreementPurpose
from exchange.db import Prepared, core_connection


def _in_force(on: date | ColumnElement[date]) -> object:
    return and_(
        Agreement.status == "executed",
        Agreement.start <= on,
        or_(Agreement.end.is_(None), Agreement.end >= on),
    )


_party_a, _party_b = aliased(AgreementParty), aliased(AgreementParty)


def agreement_for(
    first: SQLColumnExpression[uuid.UUID],
    second: SQLColumnExpression[uuid.UUID],
    purpose: SQLColumnExpression[str],
    on: SQLColumnExpression[date],
) -> Select[uuid.UUID]:
    """SQL: the id of the earliest registered executed agreement in force on `on` between
    `first` and `second` covering `purpose`; each may be a parameter or, in a subquery, a
    column of the enclosing query (a document read asks it with the document)."""
    return (
        select(Agreement.id)
        .join(_party_a, _party_a.agreement_id == Agreement.id)
        .join(_party_b, _party_b.agreement_id == Agreement.id)
        .join(AgreementPurpose, AgreementPurpose.agreement_id == Agreement.id)
        .where(
            _party_a.organisation_id == first,
            _party_b.organisation_id == second,
            AgreementPurpose.purpose == purpose,
            _in_force(on),  # type: ignore[arg-type]
        )
        .order_by(Agreement.created)
        .limit(1)
    )


#: Built and compiled once, run on the driver's cursor (`db.Prepared`): a search asks it
#: once per custodian, and SQLAlchemy's execution layer cost more than the statement
#: (bench/profiles/api-load.md, "Fifth pass").
_AGREEMENT_BETWEEN = Prepared(
    agreement_for(bindparam("first"), bindparam("second"), bindparam("purpose"), bindparam("on"))
)


def agreement_between(
    session: Session, first: uuid.UUID, second: uuid.UUID, purpose: str, on: date
) -> uuid.UUID | None:
    """The id of an executed agreement in force on `on` between two organisations covering
    `purpose` (the earliest registered, for a stable audit record), or None. One query."""
    row = _AGREEMENT_BETWEEN.first(
        core_connection(session), {"first": first, "second": second, "purpose": purpose, "on": on}
    )
    return None if row is None else row[0]


def uncovered_purposes(
    session: Session, organisation: uuid.UUID, purposes: Iterable[str], on: date
) -> list[str]:
    """The purposes no executed agreement in force on `on` with `organisation` as a party
    covers (recording a Consent needs every one covered: `access.md`)."""
    wanted = sorted(set(purposes))
    covered = set(
        session.scalars(
            select(AgreementPurpose.purpose)
            .join(Agreement, Agreement.id == AgreementPurpose.agreement_id)
            .join(AgreementParty, AgreementParty.agreement_id == Agreement.id)
            .where(
                AgreementParty.organisation_id == organisation,
                AgreementPurpose.purpose.in_(wanted),
                _in_force(on),  # type: ignore[arg-type]
            )
        )
    )
    return [purpose for purpose in wanted if purpose not in covered]


def party_to_an_agreement(session: Session, organisation: uuid.UUID, on: date) -> bool:
    """Whether `organisation` is a party to some executed agreement in force on `on`
    (registering a patient needs one: `access.md`)."""
    return (
        session.scalar(
            select(AgreementParty.agreement_id)
            .join(Agreement, Agreement.id == AgreementParty.agreement_id)
            .where(AgreementParty.organisation_id == organisation, _in_force(on))  # type: ignore[arg-type]
            .limit(1)
        )
        is not None
    )
