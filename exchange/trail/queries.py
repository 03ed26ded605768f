"""Searching the audit trail (`audit.md`, "Reading the trail"): an organisation sees the
events it acted in or that concern documents it holds (as custodian), nothing else. The
same filters serve the AuditEvent API, the console's access log and the export."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from sqlalchemy import ColumnElement, Select, false, or_, select

from exchange.audit.models import AuditEntityRef, AuditRecord
from exchange.codes import EXT_AUDIT_CHAIN
from exchange.patients.models import Patient
from exchange.search import DateRange

#: Which identifier an agent is named by: an ODS code, a client id, a console user, or any.
AgentKind = Literal["organisation", "client", "user", "any"]


@dataclass(frozen=True, slots=True)
class Agent:
    """An agent search value."""

    kind: AgentKind
    value: str


@dataclass(frozen=True, slots=True)
class EventFilters:
    """What to find: each field narrows (values within a field are alternatives; an empty
    field does not narrow). `agents` and `entities` are groups, every group met by one of
    its alternatives, since a record names several of each (FHIR's repeated parameter,
    then comma). `nothing` is set when a parameter's repetitions leave no value a record
    could hold (`outcome=0&outcome=4`)."""

    recorded: Sequence[DateRange] = ()
    outcomes: Sequence[str] = ()
    actions: Sequence[str] = ()
    purposes: Sequence[str] = ()
    #: AuditKind values (`area:interaction`), as type/subtype codes map to them.
    kinds: Sequence[str] | None = None
    agents: Sequence[Sequence[Agent]] = ()
    #: Acting organisations (ODS codes); narrows together with `agents` (a client or user).
    organisations: Sequence[str] = ()
    patient_ids: Sequence[uuid.UUID] = ()
    nhs_numbers: Sequence[str] = ()
    entities: Sequence[Sequence[str]] = ()
    break_glass: bool | None = None
    review_reasons: Sequence[str] = field(default_factory=tuple)
    nothing: bool = False


def visible_to(organisation: str) -> ColumnElement[bool]:
    """Events whose acting organisation, or whose document's custodian, is `organisation`."""
    return or_(AuditRecord.agent_org == organisation, AuditRecord.custodian_org == organisation)


def _agent_clause(agent: Agent) -> ColumnElement[bool]:
    if agent.kind == "organisation":
        return AuditRecord.agent_org == agent.value
    if agent.kind == "client":
        return AuditRecord.agent_client_id == agent.value
    if agent.kind == "user":
        return AuditRecord.agent_user == agent.value
    return or_(
        AuditRecord.agent_client_id == agent.value,
        AuditRecord.agent_org == agent.value,
        AuditRecord.agent_user == agent.value,
    )


def conditions(filters: EventFilters) -> list[ColumnElement[bool]]:
    """The SQL conditions of `filters` (index-backed: organisation, patient, time)."""
    clauses: list[ColumnElement[bool]] = [
        bound.clause(AuditRecord.recorded) for bound in filters.recorded
    ]
    for values, column in (
        (filters.outcomes, AuditRecord.outcome),
        (filters.actions, AuditRecord.action),
        (filters.purposes, AuditRecord.purpose),
        (filters.review_reasons, AuditRecord.review_reason),
    ):
        if values:
            clauses.append(column.in_(list(values)))
    if filters.kinds is not None:
        clauses.append(AuditRecord.kind.in_(list(filters.kinds)) if filters.kinds else false())
    if filters.nothing:
        clauses.append(false())
    for agents in filters.agents:
        clauses.append(or_(*(_agent_clause(agent) for agent in agents)) if agents else false())
    if filters.organisations:
        clauses.append(AuditRecord.agent_org.in_(list(filters.organisations)))
    if filters.patient_ids:
        clauses.append(AuditRecord.patient_id.in_(list(filters.patient_ids)))
    if filters.nhs_numbers:
        clauses.append(
            AuditRecord.patient_id.in_(
                select(Patient.id).where(Patient.nhs_number.in_(list(filters.nhs_numbers)))
            )
        )
    for references in filters.entities:
        clauses.append(
            AuditRecord.id.in_(
                select(AuditEntityRef.audit_id).where(
                    AuditEntityRef.reference.in_(list(references))
                )
            )
        )
    if filters.break_glass is not None:
        clauses.append(AuditRecord.break_glass.is_(filters.break_glass))
    return clauses


def events_of(organisation: str, filters: EventFilters) -> Select[AuditRecord]:
    """The events `organisation` may see that match `filters`."""
    return select(AuditRecord).where(visible_to(organisation), *conditions(filters))


def _instant(value: Any) -> str:
    return str(value.isoformat(timespec="milliseconds")).replace("+00:00", "Z")


def event_resource(row: AuditRecord) -> dict[str, Any]:
    """The stored AuditEvent, as served: its meta and, once sealed, its chain position."""
    resource: dict[str, Any] = orjson.loads(row.payload)
    resource["meta"] = {
        **resource.get("meta", {}),
        "versionId": "1",
        "lastUpdated": _instant(row.recorded),
    }
    if row.sequence is not None:
        resource.setdefault("extension", []).append(
            {
                "url": EXT_AUDIT_CHAIN,
                "extension": [
                    {"url": "sequence", "valueString": str(row.sequence)},
                    {"url": "previousHash", "valueString": row.previous_hash},
                    {"url": "hash", "valueString": row.hash},
                ],
            }
        )
    return resource
