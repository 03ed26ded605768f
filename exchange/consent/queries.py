"""Finding Consents: who may read which (`access.md`, "who reads a patient's Consents"), the
search filters as the front doors fill them, and the rows the decision and the contest
check read."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from sqlalchemy import (
    ColumnElement,
    Select,
    SQLColumnExpression,
    String,
    bindparam,
    cast,
    false,
    func,
    literal_column,
    or_,
    select,
)
from sqlalchemy.orm import Session

from exchange.codes import LOINC_SYSTEM, ConsentReview, ConsentValidity, code_system_url
from exchange.consent.models import ConsentRow
from exchange.consent.profile import PATIENT_CONSENT_LOINC
from exchange.db import Prepared, core_connection
from exchange.patients.models import Patient
from exchange.patients.service import in_care_of
from exchange.search import DateRange

_VALIDITY_SYSTEM: Final = code_system_url("consent-validity")
_REVIEW_SYSTEM: Final = code_system_url("consent-review")


class Category(StrEnum):
    """What a `category` search value means."""

    #: LOINC 59284-0, which the profile requires on every Consent.
    PATIENT_CONSENT = "patient-consent"
    #: Any other category: no Consent has one (none other is indexed), so nothing matches.
    OTHER = "other"


class Tag(StrEnum):
    """What a `_tag` search value means: one of the tags the server sets, or another."""

    DECISION_MAKER_NOT_VALID = ConsentValidity.DECISION_MAKER_NOT_VALID.value
    CONTESTED = ConsentReview.CONTESTED.value
    #: A tag the server never sets (a client cannot set tags), so nothing matches.
    OTHER = "other"


def category_of(system: str | None, code: str) -> Category:
    """The meaning of a category token (`system|code`, the system optional)."""
    if code == PATIENT_CONSENT_LOINC and system in (None, LOINC_SYSTEM):
        return Category.PATIENT_CONSENT
    return Category.OTHER


def tag_of(system: str | None, code: str) -> Tag:
    """The meaning of a `_tag` token (`system|code`, the system optional)."""
    if code == ConsentValidity.DECISION_MAKER_NOT_VALID and system in (None, _VALIDITY_SYSTEM):
        return Tag.DECISION_MAKER_NOT_VALID
    if code == ConsentReview.CONTESTED and system in (None, _REVIEW_SYSTEM):
        return Tag.CONTESTED
    return Tag.OTHER


@dataclass(frozen=True, slots=True)
class ConsentFilters:
    """What to find among the Consents the caller may read: every field given must hold.
    A Consent has one patient and one status, so those are the values it may have
    (alternatives; None: any, []: none). Categories and tags are lists of groups, every
    group met by one of its alternatives (FHIR's repeated parameter, then comma)."""

    #: The Consent is of one of these patients.
    patient_ids: Sequence[uuid.UUID] | None = None
    #: The Consent's patient has one of these NHS numbers.
    nhs_numbers: Sequence[str] | None = None
    statuses: Sequence[str] | None = None
    #: `Consent.dateTime` within every one of these.
    dates: Sequence[DateRange] = ()
    #: Groups of categories (OTHER: none has it).
    categories: Sequence[Sequence[Category]] = ()
    #: Groups of tags (OTHER: none has it).
    tags: Sequence[Sequence[Tag]] = ()


def _has_tag(tag: Tag) -> ColumnElement[bool]:
    if tag is Tag.DECISION_MAKER_NOT_VALID:
        return ConsentRow.maker_valid.is_(False)
    if tag is Tag.CONTESTED:
        return ConsentRow.contested.is_(True)
    return false()


def visible_to(organisation_id: uuid.UUID) -> ColumnElement[bool]:
    """Consents an organisation may read: those it recorded, and those of patients for whom
    it is or was a Task's requester or owner (a care relationship; merely registering the
    child is not one: `access.md`)."""
    return or_(
        ConsentRow.organisation_id == organisation_id,
        ConsentRow.patient_id.in_(in_care_of(organisation_id)),
    )


def visible_consent(
    session: Session, consent_id: uuid.UUID, organisation_id: uuid.UUID
) -> ConsentRow | None:
    """The Consent if the organisation may read it; None either way otherwise."""
    return session.scalars(
        select(ConsentRow).where(ConsentRow.id == consent_id, visible_to(organisation_id))
    ).first()


def conditions(filters: ConsentFilters) -> list[ColumnElement[bool]]:
    """The SQL conditions of `filters` (all must hold)."""
    clauses: list[ColumnElement[bool]] = []
    if filters.patient_ids is not None:
        clauses.append(ConsentRow.patient_id.in_(list(filters.patient_ids)))
    if filters.nhs_numbers is not None:
        clauses.append(
            ConsentRow.patient_id.in_(
                select(Patient.id).where(Patient.nhs_number.in_(list(filters.nhs_numbers)))
            )
        )
    if filters.statuses is not None:
        clauses.append(ConsentRow.status.in_(list(filters.statuses)))
    clauses += [bound.clause(ConsentRow.date_time) for bound in filters.dates]
    # Every Consent has the one category the profile requires, and no other.
    if any(Category.PATIENT_CONSENT not in group for group in filters.categories):
        clauses.append(false())
    for group in filters.tags:
        tags = [_has_tag(tag) for tag in group]
        clauses.append(or_(*tags) if tags else false())
    return clauses


def consents_of(organisation_id: uuid.UUID, filters: ConsentFilters) -> Select[ConsentRow]:
    """The Consents `organisation_id` may read that match `filters`."""
    return select(ConsentRow).where(visible_to(organisation_id), *conditions(filters))


def consents_of_patient(session: Session, patient_id: uuid.UUID) -> list[ConsentRow]:
    """Every stored Consent of a patient (all statuses, all recorders), oldest decision first."""
    return list(
        session.scalars(
            select(ConsentRow)
            .where(ConsentRow.patient_id == patient_id)
            .order_by(ConsentRow.date_time)
        )
    )


#: Built and compiled once, run on the driver's cursor (`db.Prepared`): a read whose
#: Consents changed since its time, and a search once per patient, ask it
#: (exchange/consent/cache.py; bench/profiles/api-load.md, "Fifth pass").
_CURRENT_VERSIONS: Final = Prepared(
    select(ConsentRow.id, ConsentRow.version, ConsentRow.last_updated)
    .where(ConsentRow.patient_id == bindparam("patient_id"))
    .order_by(ConsentRow.date_time)
)


def versions_column(patient_id: SQLColumnExpression[uuid.UUID]) -> ColumnElement[str | None]:
    """SQL: `id:version` of every stored Consent of the patient, comma-separated in no
    particular order (the decision does not depend on it), NULL for none: what
    `current_versions` answers, asked as a column of another query (a document read asks
    it with the document). `parse_versions` reads it."""
    pair = cast(ConsentRow.id, String) + ":" + cast(ConsentRow.version, String)
    return (
        # The separator as SQL text: a bound one is rendered per execution (`db.Prepared`).
        select(func.aggregate_strings(pair, literal_column("','")))  # type: ignore[arg-type]
        .where(ConsentRow.patient_id == patient_id)
        .scalar_subquery()
    )


def latest_update_column(
    patient_id: SQLColumnExpression[uuid.UUID],
) -> ColumnElement[datetime]:
    """SQL: when a Consent of the patient last changed (NULL for none), asked with
    `versions_column`: the versions stand as they were at a time after it."""
    return (
        select(func.max(ConsentRow.last_updated))
        .where(ConsentRow.patient_id == patient_id)
        .scalar_subquery()
    )


def parse_versions(text: str | None) -> list[tuple[uuid.UUID, int]]:
    """The (id, version) pairs of a `versions_column` value."""
    pairs = [item.split(":") for item in text.split(",")] if text else []
    return [(uuid.UUID(consent_id), int(version)) for consent_id, version in pairs]


_RESOURCES: Final = select(
    ConsentRow.id, ConsentRow.version, ConsentRow.last_updated, ConsentRow.resource
).where(ConsentRow.id.in_(bindparam("ids", expanding=True)))


def current_versions(
    session: Session, patient_id: uuid.UUID
) -> list[tuple[uuid.UUID, int, datetime]]:
    """(id, current version, last updated) of every stored Consent of a patient, oldest
    decision first: what the decision reads before it knows which records it holds."""
    rows = _CURRENT_VERSIONS.rows(core_connection(session), {"patient_id": patient_id})
    return [(row[0], row[1], row[2]) for row in rows]


def current_resources(
    session: Session, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, tuple[int, datetime, dict[str, Any]]]:
    """The current (version, last updated, resource) of each of the Consents `ids`: the
    version is read with the resource, since another version may have been committed
    since `current_versions` answered."""
    if not ids:
        return {}
    rows = core_connection(session).execute(_RESOURCES, {"ids": list(ids)})
    return {row[0]: (row[1], row[2], row[3]) for row in rows}


def others_standing_consents(
    session: Session, patient_id: uuid.UUID, organisation_id: uuid.UUID
) -> list[ConsentRow]:
    """The active Consents with a valid decision-maker that organisations other than
    `organisation_id` recorded for the patient, newest decision first."""
    return list(
        session.scalars(
            select(ConsentRow)
            .where(
                ConsentRow.patient_id == patient_id,
                ConsentRow.organisation_id != organisation_id,
                ConsentRow.status == "active",
                ConsentRow.maker_valid.is_(True),
            )
            .order_by(ConsentRow.date_time.desc(), ConsentRow.id)
        )
    )
