"""One advice request's synthetic records, as the service would have stored them: the Task
from its LA (`advice_requests.service.store_task`), each change by its owner or LA a new
version (`apply_change`, the workflow's transitions), the documents the parties attached
(`documents.service.upload_binary`, `attach_document`), the other party's reads of them,
and the audit entry of each.
"""

from __future__ import annotations

import base64
import functools
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from math import log
from typing import TYPE_CHECKING, Any, Final

from bench.synthetic_world import Organisation, seeded_uuid
from exchange.advice_requests.clock_rules import due_date
from exchange.advice_requests.purposes import purpose_of
from exchange.advice_requests.service import receipt_instant
from exchange.audit.events import AuditKind, Entity, Outcome
from exchange.clock import london_date
from exchange.codes import (
    CONFIDENTIALITY_SYSTEM,
    EXT_SHA256,
    LA_CASE_REFERENCE_SYSTEM,
    code_system_url,
)
from exchange.documents.access import deciding_consents
from exchange.versions import instant, stamp

if TYPE_CHECKING:
    from bench.synthetic_records import ChildStory

#: Why providers reject, and how often (`workflow._requirements` says what each needs).
REJECTIONS: Final = {
    "not-known-to-service": 0.6,
    "wrong-service": 0.2,
    "incompatible-with-duties": 0.1,
    "adverse-effect-on-functions": 0.1,
}
TITLES: Final = {
    "health-advice": "Health advice - EHC needs assessment",
    "other-health-advice": "Further health advice",
    "annual-review-advice": "Health advice - annual review",
    "dco-qa-feedback": "DCO quality assurance of health sections",
    "draft-plan-health-sections": "Draft EHC plan - sections C and G",
    "supporting-information": "Supporting information from the LA",
}
#: Median document size (`quality.md`: 300 KB, up to 100 MiB).
MEDIAN_SIZE: Final = 300_000
MAX_SIZE: Final = 100 * 1024 * 1024


def concept(system: str, code: str) -> dict[str, Any]:
    """A CodeableConcept of one of the service's code systems."""
    return concept_of(code_system_url(system), code)


def concept_of(system: str, code: str) -> dict[str, Any]:
    """A CodeableConcept of one coding."""
    return {"coding": [{"system": system, "code": code}]}


@dataclass(slots=True)
class Request:
    """An advice request as it stands at `until`."""

    id: uuid.UUID
    task_type: str
    reason: str | None
    owner: Organisation
    authored: datetime
    resource: dict[str, Any]
    version: int = 1
    status: str = "requested"
    completed_on: Any = None
    closed_on: Any = None
    status_reason: str | None = None
    forwarded: bool = False
    last_updated: datetime | None = None

    @property
    def purpose(self) -> str:
        """The purpose its documents are read under."""
        return purpose_of(self.task_type, self.reason).value


class Advice:
    """One advice request from the child's LA: stored, changed, answered, read."""

    def __init__(
        self,
        child: ChildStory,
        task_type: str,
        reason: str | None,
        owner: Organisation,
        at: datetime,
    ) -> None:
        self.child, self.rng, self.rows, self.audit = child, child.rng, child.rows, child.audit
        self.task_type, self.reason, self.owner, self.at = task_type, reason, owner, at
        self.parties: set[tuple[uuid.UUID, str]] = set()

    def write(self) -> None:
        """Store the request and every change it has had by `until`."""
        child = self.child
        if self.at > child.until:
            return
        request = self._store()
        child.task_ids.append(request.id)
        self._lifecycle(request)
        self.rows.add(
            "task",
            (request.id, child.patient_id, child.la.id, request.owner.id, self.task_type,
             self.reason, request.status, self.at, london_date(self.at), self.due,
             request.completed_on, request.closed_on, request.status_reason,
             request.forwarded, False, request.version, request.last_updated,
             request.resource),
        )  # fmt: skip
        for organisation_id, role in sorted(self.parties, key=str):
            self.rows.add("task_party", (request.id, organisation_id, role))

    def _store(self) -> Request:
        """The request as `store_task` stores it."""
        rng, child, at = self.rng, self.child, self.at
        task_id = seeded_uuid(rng)
        received = london_date(at)
        resource: dict[str, Any] = {
            "resourceType": "Task",
            "status": "requested",
            "intent": "order",
            "code": concept("task-type", self.task_type),
            "identifier": [
                {
                    "system": LA_CASE_REFERENCE_SYSTEM,
                    "value": f"EHC-{received.year}-{rng.randrange(100000):05d}",
                }
            ],
            "for": {"reference": f"Patient/{child.patient_id}"},
            "owner": {"identifier": self.owner.reference()["identifier"]},
            "note": [{"text": f"Agreed at panel on {received.isoformat()}."}],
        }
        if self.reason is not None:
            resource["reasonCode"] = concept("regulation", self.reason)
        given = tribunal = None
        if self.reason == "annual-review":
            given = received + timedelta(days=rng.randint(28, 56))
            resource["restriction"] = {"period": {"end": given.isoformat()}}
        if self.task_type == "tribunal-health-response":
            tribunal = received - timedelta(days=rng.randint(0, 5))
            resource["input"] = [
                {
                    "type": concept("task-input-type", "tribunal-order-received"),
                    "valueDate": tribunal.isoformat(),
                }
            ]
        self.due = due_date(self.task_type, self.reason, received, given, tribunal)
        body = dict(resource)
        body["requester"] = child.la.reference()
        body["owner"] = self.owner.reference()
        body["authoredOn"] = instant(at)
        body["lastModified"] = instant(at)
        body["executionPeriod"] = {"start": receipt_instant(at)}
        body["restriction"] = {
            **(resource.get("restriction") or {}),
            "period": {"end": self.due.isoformat()},
        }
        stored = stamp(body, task_id, 1, at)
        request = Request(
            task_id, self.task_type, self.reason, self.owner, at, stored, last_updated=at
        )
        self.rows.add("resource_version", ("Task", task_id, 1, at, stored))
        self.parties |= {(child.la.id, "requester"), (self.owner.id, "owner")}
        child.grant(child.la, "task-requester", at)
        child.grant(self.owner, "task-owner", at)
        self.audit.api(at, child.la, AuditKind.CREATE, self._entities(request), child.patient_id)
        return request

    def _entities(self, request: Request) -> tuple[Entity, ...]:
        return (Entity(f"Task/{request.id}"), *self.child.patient_entities())

    def _lifecycle(self, request: Request) -> None:
        """The owner's (and the LA's) changes, each stored as `apply_change` stores it."""
        rng, child = self.rng, self.child
        at = self.at
        la_document = None
        if self.task_type == "dco-quality-assurance":
            la_document = self._document(request, child.la, "draft-plan-health-sections", at)
        elif rng.random() < 0.6:
            la_document = self._document(request, child.la, "supporting-information", at)
        if self.task_type != "dco-quality-assurance" and rng.random() < 0.03:
            at += timedelta(days=rng.uniform(1, 5))
            others = [p for p in child.world.area_providers[child.la.area] if p != request.owner]
            new_owner = rng.choice(others)
            if not self._change(
                request, at, "forward", "requested", "forwarded", new_owner=new_owner
            ):
                return
            self.parties.discard((request.owner.id, "owner"))
            self.parties |= {(request.owner.id, "previous-owner"), (new_owner.id, "owner")}
            child.grant(new_owner, "task-owner", at)
            request.owner, request.forwarded = new_owner, True
        fate = rng.random()
        if fate >= 0.97:
            later = at + timedelta(days=rng.uniform(2, 40))
            self._change(
                request, later, "cancel", "cancelled", "withdrawn-by-requester", by=child.la
            )
            return
        accepted = at + timedelta(days=rng.uniform(0.1, 4))
        if not self._change(request, accepted, "accept", "accepted"):
            return
        if la_document is not None:
            self._read(
                request,
                la_document,
                request.owner,
                accepted + timedelta(minutes=rng.uniform(1, 90)),
            )
        if fate >= 0.88 and self.task_type != "dco-quality-assurance":
            self._reject(request, accepted + timedelta(days=rng.uniform(1, 25)))
            return
        started = accepted + timedelta(days=rng.uniform(0.5, 12))
        if not self._change(request, started, "start", "in-progress"):
            return
        allowed = (self.due - london_date(self.at)).days
        finished = max(
            self.at + timedelta(days=allowed * rng.uniform(0.4, 1.25)), started + timedelta(hours=1)
        )
        if finished > child.until:
            return
        kind = "dco-qa-feedback" if self.task_type == "dco-quality-assurance" else "health-advice"
        if self.reason == "annual-review" and rng.random() < 0.5:
            kind = "annual-review-advice"
        documents = [
            self._document(
                request, request.owner, kind, finished - timedelta(minutes=rng.uniform(5, 120))
            )
        ]
        if kind == "health-advice" and rng.random() < 0.45:
            documents.append(
                self._document(
                    request,
                    request.owner,
                    "other-health-advice",
                    finished - timedelta(minutes=rng.uniform(130, 600)),
                )
            )
        output = {
            "type": concept("task-output-type", "advice"),
            "valueReference": {"reference": f"DocumentReference/{documents[0][0]}"},
        }
        self._change(request, finished, "complete", "completed", outputs=[output])
        for document in documents:
            self._read(request, document, child.la, finished + timedelta(hours=rng.uniform(1, 240)))

    def _reject(self, request: Request, at: datetime) -> None:
        reason = self.rng.choices(list(REJECTIONS), weights=list(REJECTIONS.values()))[0]
        outputs: list[dict[str, Any]] = []
        notes: list[dict[str, Any]] = []
        if reason == "not-known-to-service":
            outputs = [
                {"type": concept("task-output-type", kind), "valueBoolean": True}
                for kind in ("not-on-waiting-list", "not-seen-in-last-12-months")
            ]
        elif reason != "wrong-service":
            notes = [{"text": "Complying would be incompatible with the service's duties."}]
        self._change(request, at, "reject", "rejected", reason, outputs=outputs, notes=notes)

    def _change(
        self,
        request: Request,
        at: datetime,
        kind: str,
        status: str,
        reason: str | None = None,
        *,
        outputs: list[dict[str, Any]] | None = None,
        notes: list[dict[str, Any]] | None = None,
        new_owner: Organisation | None = None,
        by: Organisation | None = None,
    ) -> bool:
        """The next version, as `apply_change` stores it; False if not yet happened."""
        if at > self.child.until:
            return False
        current = request.resource
        # The client sends the Task it read, changed; the server keeps what it manages.
        body = {k: v for k, v in current.items() if k != "statusReason"}
        body["status"] = status
        if reason is not None:
            body["statusReason"] = concept("task-status-reason", reason)
        if outputs:
            body["output"] = [*current.get("output", []), *outputs]
        if notes:
            body["note"] = [*current.get("note", []), *notes]
        body["lastModified"] = instant(at)
        closes = kind in ("complete", "reject", "cancel")
        period = dict(current.get("executionPeriod") or {})
        if closes:
            period["end"] = receipt_instant(at)
        body["executionPeriod"] = period
        body["owner"] = new_owner.reference() if new_owner is not None else current["owner"]
        request.version += 1
        request.resource = stamp(body, request.id, request.version, at)
        request.status, request.status_reason, request.last_updated = status, reason, at
        if kind == "complete":
            request.completed_on = london_date(at)
        if closes:
            request.closed_on = london_date(at)
        self.rows.add(
            "resource_version", ("Task", request.id, request.version, at, request.resource)
        )
        actor = by or request.owner
        entities = self._entities(request)
        self.audit.api(
            at - timedelta(seconds=2), actor, AuditKind.READ, entities, self.child.patient_id
        )
        self.audit.api(
            at, actor, AuditKind.UPDATE, entities, self.child.patient_id, outcome_desc=kind
        )
        return True

    # --- documents --------------------------------------------------------------------------

    def _document(
        self, request: Request, custodian: Organisation, doc_type: str, at: datetime
    ) -> tuple[uuid.UUID, Organisation]:
        """Upload content, then attach it (`upload_binary`, `attach_document`)."""
        rng, child = self.rng, self.child
        binary_id, document_id = seeded_uuid(rng), seeded_uuid(rng)
        uploaded = at - timedelta(seconds=rng.uniform(2, 1800))
        size = int(min(max(rng.lognormvariate(log(MEDIAN_SIZE), 0.9), 20_000), MAX_SIZE))
        sha1 = rng.randbytes(20)
        sha256 = rng.randbytes(32).hex()
        # No blob is written: the row names one that does not exist and a data key no KEK
        # unwraps, so reading these bytes fails (Corrupted); searches and metadata work.
        self.rows.add(
            "binary",
            (binary_id, rng.randbytes(16).hex(), "application/pdf", size, sha256, sha1,
             rng.randbytes(60), "local:1", custodian.id, uploaded, document_id, None),
        )  # fmt: skip
        self.audit.api(uploaded, custodian, AuditKind.CREATE, (Entity(f"Binary/{binary_id}"),))
        given = {
            "resourceType": "DocumentReference",
            "status": "current",
            "docStatus": "final",
            "type": concept("document-type", doc_type),
            "subject": {"reference": f"Patient/{child.patient_id}"},
            "author": [custodian.reference()],
            "description": TITLES[doc_type],
            "content": [
                {
                    "attachment": {
                        "contentType": "application/pdf",
                        "url": f"Binary/{binary_id}",
                        "title": TITLES[doc_type],
                    }
                }
            ],
            "context": {"related": [{"reference": f"Task/{request.id}"}]},
        }
        attachment = {
            "title": TITLES[doc_type],
            "url": f"Binary/{binary_id}",
            "contentType": "application/pdf",
            "size": size,
            "hash": base64.b64encode(sha1).decode("ascii"),
            "extension": [{"url": EXT_SHA256, "valueString": sha256}],
        }
        body = {
            **given,
            "content": [{"attachment": attachment}],
            "custodian": custodian.reference(),
            "date": instant(at),
            "securityLabel": [{"coding": [{"system": CONFIDENTIALITY_SYSTEM, "code": "R"}]}],
        }
        stored = stamp(body, document_id, 1, at)
        self.rows.add(
            "document_reference",
            (document_id, child.patient_id, custodian.id, request.id, binary_id, doc_type,
             "current", at, 1, at, stored),
        )  # fmt: skip
        self.rows.add("resource_version", ("DocumentReference", document_id, 1, at, stored))
        child.grant(custodian, "custodian", at)
        entities = (
            Entity(f"DocumentReference/{document_id}"),
            Entity(f"Binary/{binary_id}"),
            *child.patient_entities(),
            Entity(f"Task/{request.id}"),
        )
        self.audit.api(
            at, custodian, AuditKind.CREATE, entities, child.patient_id, custodian=custodian.ods
        )
        return document_id, custodian

    def _read(
        self,
        request: Request,
        document: tuple[uuid.UUID, Organisation],
        reader: Organisation,
        at: datetime,
    ) -> None:
        """The other party reads a document's metadata, then its content: audited with
        what the read decision says then (agreement, consent)."""
        if at > self.child.until:
            return
        for offset, kind in ((0, AuditKind.READ), (3, AuditKind.READ)):
            self.audit.later(
                at + timedelta(seconds=offset),
                functools.partial(self._read_entry, request.purpose, document, reader, at, kind),
            )

    def _read_entry(
        self,
        purpose: str,
        document: tuple[uuid.UUID, Organisation],
        reader: Organisation,
        at: datetime,
        kind: AuditKind,
    ) -> Any:
        child = self.child
        document_id, custodian = document
        decision = child.decision(reader.ods, purpose, at)
        entities = [
            Entity(f"DocumentReference/{document_id}"),
            *child.patient_entities(),
            Entity(f"Contract/{child.agreement.id}", "agreement"),
            *(Entity(f"Consent/{c}", "consent") for c in deciding_consents(decision)),
        ]
        if decision.permit:
            return self.audit.entry(
                reader, kind, tuple(entities), child.patient_id,
                custodian=custodian.ods, purpose=purpose,
            )  # fmt: skip
        return self.audit.entry(
            reader, kind, tuple(entities), child.patient_id, custodian=custodian.ods,
            outcome=Outcome.MINOR_FAILURE, outcome_desc=str(decision.reason),
        )  # fmt: skip
