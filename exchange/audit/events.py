"""What an audit record says: the event kinds and the FHIR AuditEvent they become.

Shaped after IHE Basic Audit Log Patterns (BALP): the calling client and its organisation
as agents, the resource, patient, agreement and consent as entities, the access token's
`jti` and the request id as identifier entities.
"""

from __future__ import annotations

import base64
import socket
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from exchange import codes

_BALP_ENTITY_TYPE: Final = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType"
_OBJECT_ROLE: Final = "http://terminology.hl7.org/CodeSystem/object-role"
_SECURITY_SOURCE_TYPE: Final = "http://terminology.hl7.org/CodeSystem/security-source-type"
_OBSERVER: Final = f"exchange@{socket.gethostname()}"


class AuditKind(StrEnum):
    """Every kind of audited event, as `area:interaction`."""

    READ = "rest:read"
    VREAD = "rest:vread"
    CREATE = "rest:create"
    UPDATE = "rest:update"
    PATCH = "rest:patch"
    DELETE = "rest:delete"
    SEARCH = "rest:search-type"
    HISTORY = "rest:history-instance"
    OPERATION = "rest:operation"
    TOKEN = "auth:token"  # noqa: S105 - an event name, not a secret
    LOGIN = "console:login"
    LOGIN_FAILED = "console:login-failed"
    LOGOUT = "console:logout"
    PAGE_VIEW = "console:page-view"
    BREAK_GLASS_REVIEW = "console:break-glass-review"
    BOOTSTRAP = "operator:bootstrap"
    REGISTRY_CHANGE = "operator:registry-change"
    KEY_ROTATION = "operator:key-rotation"
    RETENTION = "operator:retention"
    AUDIT_EXPORT = "operator:audit-export"
    AUDIT_CHECKPOINT = "operator:audit-checkpoint"
    AUDIT_VERIFY = "operator:audit-verify"
    REPORT = "operator:report"

    @property
    def type_coding(self) -> dict[str, str]:
        """AuditEvent.type: `rest` for API calls, DICOM User Authentication for logins and
        tokens, DICOM Application Activity for operator work."""
        area = self.value.split(":", 1)[0]
        if area == "rest":
            return {
                "system": codes.AUDIT_EVENT_TYPE_SYSTEM,
                "code": "rest",
                "display": "RESTful Operation",
            }
        if self in (AuditKind.TOKEN, AuditKind.LOGIN, AuditKind.LOGIN_FAILED, AuditKind.LOGOUT):
            return {
                "system": codes.DICOM_DCM_SYSTEM,
                "code": "110114",
                "display": "User Authentication",
            }
        return {
            "system": codes.DICOM_DCM_SYSTEM,
            "code": "110100",
            "display": "Application Activity",
        }

    @property
    def action(self) -> Action:
        """AuditEvent.action of this kind of event (C, R, U, D, E)."""
        return _KIND_ACTIONS.get(self, Action.READ)

    @property
    def subtype_coding(self) -> dict[str, str]:
        """AuditEvent.subtype: the FHIR interaction, or this service's operator action."""
        area, name = self.value.split(":", 1)
        if area == "rest":
            return {"system": codes.RESTFUL_INTERACTION_SYSTEM, "code": name}
        if self is AuditKind.TOKEN:
            return {"system": codes.code_system_url("operator-action"), "code": "login"}
        return {"system": codes.code_system_url("operator-action"), "code": name}


class Action(StrEnum):
    """AuditEvent.action."""

    CREATE = "C"
    READ = "R"
    UPDATE = "U"
    DELETE = "D"
    EXECUTE = "E"


class Outcome(StrEnum):
    """AuditEvent.outcome (R4): 0 success, 4 refused or denied (4xx), 8 server failure (5xx)."""

    SUCCESS = "0"
    MINOR_FAILURE = "4"
    SERIOUS_FAILURE = "8"
    MAJOR_FAILURE = "12"

    @classmethod
    def for_status(cls, status: int) -> Outcome:
        """The outcome of an HTTP response status."""
        if status >= 500:
            return cls.SERIOUS_FAILURE
        if status >= 400:
            return cls.MINOR_FAILURE
        return cls.SUCCESS


_KIND_ACTIONS: Final = {
    AuditKind.CREATE: Action.CREATE,
    AuditKind.UPDATE: Action.UPDATE,
    AuditKind.PATCH: Action.UPDATE,
    AuditKind.DELETE: Action.DELETE,
    AuditKind.OPERATION: Action.EXECUTE,
}


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acted: an OAuth client or a console user, for an organisation, from an address."""

    client_id: str | None = None
    user: str | None = None
    organisation: str | None = None
    address: str | None = None
    purpose: str | None = None
    break_glass: bool = False
    token_jti: str | None = None

    @classmethod
    def operator(cls) -> Actor:
        """The operator at the command line (`exchange ...`)."""
        return cls(user=f"operator@{socket.gethostname()}")


@dataclass(frozen=True, slots=True)
class Entity:
    """A resource the event concerns: `Type/id` plus the role it plays."""

    reference: str
    role: str = "domain-resource"
    display: str | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """Everything one audit record says, before it becomes a FHIR AuditEvent."""

    kind: AuditKind
    action: Action
    outcome: Outcome
    actor: Actor
    outcome_desc: str | None = None
    entities: tuple[Entity, ...] = ()
    patient_id: uuid.UUID | None = None
    custodian: str | None = None
    query: str | None = None
    justification: str | None = None
    request_id: str | None = None
    details: dict[str, str] = field(default_factory=dict)
    #: Puts the event in the IG review queue (`review-reason`), shown as a `meta.tag`.
    review_reason: codes.ReviewReason | None = None


_ENTITY_TYPE: Final = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
#: BALP's entity.type / entity.role: the Patient is a person (1) in the patient role (1);
#: the resource acted on a system object (2) in the domain-resource role (4); the
#: agreement and consent that decided a disclosure are security resources (13).
_ENTITY_ROLES: Final = {
    "patient": (("1", "Person"), ("1", "Patient")),
    "domain-resource": (("2", "System Object"), ("4", "Domain Resource")),
    "agreement": (("2", "System Object"), ("13", "Security Resource")),
    "consent": (("2", "System Object"), ("13", "Security Resource")),
    "query": (("2", "System Object"), ("24", "Query")),
    "security-resource": (("2", "System Object"), ("13", "Security Resource")),
}
#: BALP agent.type: who sent data (source) and who received it (destination); the
#: organisation that received a disclosure is its information recipient (IRCP).
_SOURCE_ROLE: Final = {
    "system": codes.DICOM_DCM_SYSTEM,
    "code": "110153",
    "display": "Source Role ID",
}
_DESTINATION_ROLE: Final = {
    "system": codes.DICOM_DCM_SYSTEM,
    "code": "110152",
    "display": "Destination Role ID",
}
_RECIPIENT: Final = {
    "system": codes.PARTICIPATION_TYPE_SYSTEM,
    "code": "IRCP",
    "display": "information recipient",
}


def _entity(role: str) -> dict[str, Any]:
    (type_code, type_display), (role_code, role_display) = _ENTITY_ROLES.get(
        role, _ENTITY_ROLES["domain-resource"]
    )
    return {
        "type": {"system": _ENTITY_TYPE, "code": type_code, "display": type_display},
        "role": {"system": _OBJECT_ROLE, "code": role_code, "display": role_display},
    }


def to_fhir(entry: AuditEntry, event_id: uuid.UUID, recorded: datetime) -> dict[str, Any]:
    """The FHIR R4 AuditEvent for an entry (without the `audit-chain` extension, which is
    added when the sealed record is read)."""
    actor = entry.actor
    agents: list[dict[str, Any]] = []
    who: dict[str, Any]
    if actor.client_id is not None:
        who = {"identifier": {"system": codes.CLIENT_ID_SYSTEM, "value": actor.client_id}}
    else:
        who = {
            "identifier": {"system": codes.CONSOLE_USER_SYSTEM, "value": actor.user or "anonymous"}
        }
    reads = entry.action is Action.READ
    agent: dict[str, Any] = {
        "type": {"coding": [_DESTINATION_ROLE if reads else _SOURCE_ROLE]},
        "who": who,
        "requestor": True,
    }
    if actor.address:
        agent["network"] = {"address": actor.address, "type": "2"}
    if actor.purpose:
        agent["purposeOfUse"] = [
            {"coding": [{"system": codes.code_system_url("purpose"), "code": actor.purpose}]}
        ]
    agents.append(agent)
    if actor.organisation:
        organisation: dict[str, Any] = {
            "who": {"identifier": {"system": codes.ODS_SYSTEM, "value": actor.organisation}},
            "requestor": False,
        }
        if reads and entry.outcome is Outcome.SUCCESS:
            organisation = {"type": {"coding": [_RECIPIENT]}, **organisation}
        agents.append(organisation)
    if entry.custodian and entry.custodian != actor.organisation:
        # The document's custodian: the source of what was (or would have been) disclosed.
        agents.append(
            {
                "type": {"coding": [_SOURCE_ROLE]},
                "who": {"identifier": {"system": codes.ODS_SYSTEM, "value": entry.custodian}},
                "requestor": False,
            }
        )
    entities: list[dict[str, Any]] = []
    for entity in entry.entities:
        item: dict[str, Any] = {"what": {"reference": entity.reference}, **_entity(entity.role)}
        if entity.display:
            item["what"]["display"] = entity.display
        entities.append(item)
    if entry.query:
        # Never empty (FHIR ele-1): a search without parameters has no query entity.
        entities.append(
            {**_entity("query"), "query": base64.b64encode(entry.query.encode()).decode("ascii")}
        )
    if actor.token_jti:
        entities.append(
            {"what": {"identifier": {"value": f"urn:ietf:params:oauth:jti:{actor.token_jti}"}}}
        )
    if entry.request_id:
        entities.append(
            {
                "what": {"identifier": {"value": entry.request_id}},
                "type": {"system": _BALP_ENTITY_TYPE, "code": "XrequestId"},
            }
        )
    detail = [{"type": k, "valueString": v} for k, v in sorted(entry.details.items())]
    if entry.justification:
        detail.append({"type": "break-glass-justification", "valueString": entry.justification})
    if detail:
        holder = entities[0] if entities else None
        if holder is None:
            holder = _entity("domain-resource")
            entities.append(holder)
        holder["detail"] = detail
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": str(event_id),
    }
    if entry.review_reason is not None:
        event["meta"] = {
            "tag": [
                {
                    "system": codes.code_system_url("review-reason"),
                    "code": entry.review_reason.value,
                }
            ]
        }
    event |= {
        "type": entry.kind.type_coding,
        "subtype": [entry.kind.subtype_coding],
        "action": entry.action.value,
        "recorded": recorded.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "outcome": entry.outcome.value,
        "agent": agents,
        "source": {
            "observer": {"display": _OBSERVER},
            "type": [
                {"system": _SECURITY_SOURCE_TYPE, "code": "4", "display": "Application Server"}
            ],
        },
    }
    if entry.outcome_desc:
        event["outcomeDesc"] = entry.outcome_desc
    if entities:
        event["entity"] = entities
    return event
