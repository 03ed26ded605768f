"""Searching documents (`api.md`, DocumentReference search): what the front door asks for
(`DocumentFilters`), the SQL that narrows it down among the documents the caller is
related to (`access.related_to`, index-backed), and the filters on the resource itself
that SQL cannot say portably (author identifiers, category codings). What the read
decision then refuses (agreement, consent) is decided per row by `access.decide_document`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Select,
    String,
    bindparam,
    false,
    or_,
    select,
    true,
)
from sqlalchemy.orm import Session

from exchange.agreements.models import Organisation
from exchange.caller import Caller
from exchange.codes import OrganisationRole
from exchange.db import Prepared, core_connection
from exchange.documents.access import (
    ReadableDocument,
    decision_select,
    readable_documents,
    related_to,
)
from exchange.documents.models import DocumentRow
from exchange.patients.models import Patient
from exchange.search import DateRange

#: What a search may be sorted by: the document's date, or when its metadata last changed.
SortKey = Literal["date", "last_updated"]


@dataclass(frozen=True, slots=True)
class Token:
    """A token search value: a code, in a system when the client named one."""

    system: str | None
    code: str


@dataclass(frozen=True, slots=True)
class DocumentFilters:
    """What to find: every field given must hold. A document has one patient, Task,
    type, status and custodian, so each of those is the list of values it may have
    (alternatives; None: any, []: none). It may have several authors and categories:
    each of those is a list of groups, every group met by one of its alternatives (FHIR's
    repeated parameter, then comma)."""

    patient_ids: Sequence[uuid.UUID] | None = None
    nhs_numbers: Sequence[str] | None = None
    #: document-type codes.
    types: Sequence[str] | None = None
    #: `profile.DOCUMENT_STATUSES`.
    statuses: Sequence[str] | None = None
    #: `related`: the Task the document belongs to.
    task_ids: Sequence[uuid.UUID] | None = None
    #: ODS codes of the custodian.
    custodians: Sequence[str] | None = None
    #: Author identifiers.
    authors: Sequence[Sequence[Token]] = ()
    categories: Sequence[Sequence[Token]] = ()
    dates: Sequence[DateRange] = ()
    last_updated: Sequence[DateRange] = ()


def _any(clauses: list[ColumnElement[bool]]) -> ColumnElement[bool]:
    """One of `clauses` holds (none given: nothing does)."""
    return or_(*clauses) if clauses else false()


# The conditions a search by patient, NHS number or Task adds, for a value or a bind
# parameter (`related_readable`'s prepared statements).
def _of_patient(patient_id: uuid.UUID | BindParameter[uuid.UUID]) -> ColumnElement[bool]:
    return DocumentRow.patient_id == patient_id


def _of_nhs_number(number: str | BindParameter[str]) -> ColumnElement[bool]:
    return DocumentRow.patient_id.in_(select(Patient.id).where(Patient.nhs_number == number))


def _of_task(task_id: uuid.UUID | BindParameter[uuid.UUID]) -> ColumnElement[bool]:
    return DocumentRow.task_id == task_id


def conditions(filters: DocumentFilters) -> list[ColumnElement[bool]]:
    """The SQL conditions of `filters` (the columns the document table keeps for them)."""
    clauses: list[ColumnElement[bool]] = []
    if filters.patient_ids is not None:
        clauses.append(_any([_of_patient(patient_id) for patient_id in filters.patient_ids]))
    if filters.nhs_numbers is not None:
        clauses.append(_any([_of_nhs_number(number) for number in filters.nhs_numbers]))
    if filters.types is not None:
        clauses.append(DocumentRow.doc_type.in_(list(filters.types)))
    if filters.statuses is not None:
        clauses.append(DocumentRow.status.in_(list(filters.statuses)))
    if filters.task_ids is not None:
        clauses.append(_any([_of_task(task_id) for task_id in filters.task_ids]))
    if filters.custodians is not None:
        clauses.append(
            DocumentRow.custodian_id.in_(
                select(Organisation.id).where(Organisation.ods.in_(list(filters.custodians)))
            )
        )
    clauses += [bound.clause(DocumentRow.date) for bound in filters.dates]
    clauses += [bound.clause(DocumentRow.last_updated) for bound in filters.last_updated]
    return clauses


def related_documents(caller: Caller, filters: DocumentFilters) -> Select[Any]:
    """The documents matching `filters` that the caller's organisation holds or is related
    to, with what deciding a read of each needs (`access.readable_documents` reads them);
    whether it may read each is still to be decided."""
    return _related(caller.organisation_id, caller.role, conditions(filters))


def _related(
    organisation: uuid.UUID | BindParameter[uuid.UUID],
    role: str,
    clauses: list[ColumnElement[bool]],
) -> Select[Any]:
    return decision_select(true()).where(related_to(organisation, role), *clauses)


#: (patients, NHS numbers, Tasks) named in a search that asks nothing else of SQL.
_Shape = tuple[int, int, int]
#: The most of each kind a prepared shape takes (a search repeating one more often is
#: built as any other).
_MOST_OF_EACH: Final = 2
#: Prepared search statements by (ICB reader, shape): made on first use, at most
#: 2 x 3^3 of them.
_SHAPED: dict[tuple[bool, _Shape], Prepared] = {}


def _shape(filters: DocumentFilters) -> _Shape | None:
    """The shape of a search by patient, NHS number or Task and nothing else in SQL (the
    searches clients make: `patient=`, `patient.identifier=`, `related=`): how many
    alternatives of each it names. None for any other search, and for one that names a
    kind with no alternative left (it matches nothing). Authors and categories are
    matched on the resource afterwards either way."""
    if (
        filters.types is not None
        or filters.statuses is not None
        or filters.custodians is not None
        or filters.dates
        or filters.last_updated
    ):
        return None
    named = (filters.patient_ids, filters.nhs_numbers, filters.task_ids)
    if any(values is not None and not values for values in named):
        return None
    shape = (
        len(filters.patient_ids or ()),
        len(filters.nhs_numbers or ()),
        len(filters.task_ids or ()),
    )
    return shape if max(shape) <= _MOST_OF_EACH else None


def _shaped_statement(icb: bool, shape: _Shape) -> Prepared:
    """`related_documents` for one shape, with bind parameters for the reader and each
    value: `reader`, `patient_<n>`, `nhs_<n>`, `task_<n>`."""
    patients, numbers, tasks = shape
    alternatives = (
        [
            _of_patient(bindparam(f"patient_{n}", type_=DocumentRow.patient_id.type))
            for n in range(patients)
        ],
        [_of_nhs_number(bindparam(f"nhs_{n}", type_=String)) for n in range(numbers)],
        [_of_task(bindparam(f"task_{n}", type_=DocumentRow.task_id.type)) for n in range(tasks)],
    )
    clauses = [or_(*kind) for kind in alternatives if kind]
    reader = bindparam("reader", type_=DocumentRow.custodian_id.type)
    role = OrganisationRole.ICB if icb else OrganisationRole.LA
    return Prepared(_related(reader, role, clauses))


#: The columns of `decision_select`, as `ReadableDocument` names them.
_FIELDS: Final = tuple(decision_select(true()).selected_columns.keys())


def related_readable(
    session: Session, caller: Caller, filters: DocumentFilters
) -> list[ReadableDocument]:
    """What `related_documents` finds, read on the session's connection. A search by
    patient, NHS number or Task runs a statement prepared for its shape: building and
    compiling the statement for each search was a quarter of a search by patient's server
    time (bench/profiles/api-load.md, "Fifth pass")."""
    shape = _shape(filters)
    if shape is None:
        return readable_documents(session, related_documents(caller, filters))
    icb = caller.role == OrganisationRole.ICB
    prepared = _SHAPED.get((icb, shape))
    if prepared is None:
        prepared = _SHAPED[(icb, shape)] = _shaped_statement(icb, shape)
    parameters: dict[str, Any] = {"reader": caller.organisation_id}
    parameters.update({f"patient_{n}": v for n, v in enumerate(filters.patient_ids or ())})
    parameters.update({f"nhs_{n}": v for n, v in enumerate(filters.nhs_numbers or ())})
    parameters.update({f"task_{n}": v for n, v in enumerate(filters.task_ids or ())})
    return [
        ReadableDocument(**{**dict(zip(_FIELDS, row, strict=True)), "related": True})
        for row in prepared.rows(core_connection(session), parameters)
    ]


def _codings(resource: dict[str, Any], element: str) -> list[dict[str, Any]]:
    concepts = resource.get(element) or []
    concepts = concepts if isinstance(concepts, list) else [concepts]
    return [
        coding
        for concept in concepts
        if isinstance(concept, dict)
        for coding in concept.get("coding", [])
    ]


def _matches(values: list[dict[str, Any]], key: str, tokens: Sequence[Token]) -> bool:
    return any(
        any(
            value.get(key) == token.code and token.system in (None, value.get("system"))
            for value in values
        )
        for token in tokens
    )


def matches_resource(resource: dict[str, Any], filters: DocumentFilters) -> bool:
    """Whether the stored DocumentReference meets every group of authors and of
    categories asked for, each by one of its alternatives."""
    if filters.authors:
        identifiers = [
            (author.get("identifier") or {})
            for author in resource.get("author") or []
            if isinstance(author, dict)
        ]
        if not all(_matches(identifiers, "value", group) for group in filters.authors):
            return False
    codings = _codings(resource, "category") if filters.categories else []
    return all(_matches(codings, "code", group) for group in filters.categories)


def sort_position(document: ReadableDocument, sort: SortKey) -> tuple[Any, str]:
    """A document's place in a search sorted by `sort`: (the sort value, its id)."""
    return (document.date if sort == "date" else document.last_updated, str(document.id))
