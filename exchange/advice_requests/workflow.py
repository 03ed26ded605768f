"""Who may change what on an advice request, and which transitions exist
(`advice-requests.md`, Transitions). Pure: the caller supplies the old and new resource,
the caller's roles and a way to look up documents.

Problems are found in the order the spec answers them: a change nobody may make, a
transition not in the table or a missing requirement is Invalid (422); a change only the
other party may make is NotYourChange (403).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from exchange.advice_requests.clock_rules import OPEN_STATUSES
from exchange.advice_requests.profile import (
    ods_of,
    reason_of,
    status_reason_of,
    task_type_of,
    typed_items,
)
from exchange.codes import DocumentType, Regulation, TaskOutputType, TaskStatusReason, TaskType
from exchange.errors import Forbidden, invalid

OWNER: Final = "owner"
REQUESTER: Final = "requester"

#: Elements the server manages: a client's values are ignored, never an error.
SERVER_MANAGED: Final = frozenset(
    {"meta", "text", "id", "businessStatus", "lastModified", "executionPeriod"}
)
OWNER_MAY_CHANGE: Final = frozenset({"status", "statusReason", "output", "owner", "note"})
REQUESTER_MAY_CHANGE: Final = frozenset({"status", "statusReason", "note"})

#: (from, to) -> (who may, what it is). Forwarding (owner changes) is handled on its own.
TRANSITIONS: Final[dict[tuple[str, str], tuple[str, str]]] = {
    ("requested", "accepted"): (OWNER, "accept"),
    ("requested", "in-progress"): (OWNER, "start"),
    ("accepted", "in-progress"): (OWNER, "start"),
    **{(s, "completed"): (OWNER, "complete") for s in OPEN_STATUSES},
    **{(s, "rejected"): (OWNER, "reject") for s in OPEN_STATUSES},
    **{(s, "cancelled"): (REQUESTER, "cancel") for s in OPEN_STATUSES},
}
REJECTION_REASONS: Final = frozenset(
    {
        TaskStatusReason.NOT_KNOWN_TO_SERVICE,
        TaskStatusReason.WRONG_SERVICE,
        TaskStatusReason.INCOMPATIBLE_WITH_DUTIES,
        TaskStatusReason.ADVERSE_EFFECT_ON_FUNCTIONS,
    }
)
#: Children and Families Act 2014 s.31(2): a body need not comply with a request that is
#: incompatible with its own duties or would otherwise have an adverse effect on the
#: exercise of its functions; saying so needs written reasons.
NEEDS_WRITTEN_REASONS: Final = frozenset(
    {
        TaskStatusReason.INCOMPATIBLE_WITH_DUTIES,
        TaskStatusReason.ADVERSE_EFFECT_ON_FUNCTIONS,
    }
)
MIN_REASONS_LENGTH: Final = 20
ADVICE_DOCUMENT_TYPES: Final = {
    TaskType.EHCNA_HEALTH_ADVICE: frozenset(
        {DocumentType.HEALTH_ADVICE, DocumentType.OTHER_HEALTH_ADVICE}
    ),
    TaskType.TRIBUNAL_HEALTH_RESPONSE: frozenset(
        {DocumentType.HEALTH_ADVICE, DocumentType.OTHER_HEALTH_ADVICE}
    ),
    TaskType.DCO_QUALITY_ASSURANCE: frozenset({DocumentType.DCO_QA_FEEDBACK}),
}


def advice_document_types(task_type: str, reason: str | None) -> frozenset[str]:
    """The document types that deliver a request's advice: an annual review's own advice
    document counts for annual-review requests (and only for them)."""
    allowed = ADVICE_DOCUMENT_TYPES.get(TaskType(task_type), frozenset())
    if task_type == TaskType.EHCNA_HEALTH_ADVICE and reason == Regulation.ANNUAL_REVIEW:
        return allowed | {DocumentType.ANNUAL_REVIEW_ADVICE}
    return allowed


@dataclass(frozen=True, slots=True)
class Document:
    """What the workflow needs to know of a DocumentReference an output points at."""

    type: str
    custodian: str  # ODS
    related_tasks: frozenset[str]  # Task ids in context.related


#: Looks up `DocumentReference/<id>`; None if there is none the caller may use.
DocumentLookup = Callable[[str], Document | None]


class NotYourChange(Forbidden):
    """A change the rules allow, but not for this party: only the Task's other party, or
    only its owner or requester, may make it (403)."""


@dataclass(frozen=True, slots=True)
class Change:
    """An accepted change: what it is, and its effects."""

    kind: str  # accept, start, complete, reject, forward, cancel, annotate
    new_owner: str | None = None
    clock_exception: bool = False

    @property
    def closes(self) -> bool:
        """Whether the Task leaves the open statuses."""
        return self.kind in ("complete", "reject", "cancel")


def _comparable(resource: dict[str, Any], key: str) -> Any:
    value = resource.get(key)
    if key in ("owner", "requester"):
        return ods_of(value)
    return value


def _appended(old: list[Any], new: list[Any], element: str) -> list[Any]:
    if new[: len(old)] != old:
        raise invalid(f"Task.{element}", f"Task.{element} can only be appended to")
    return new[len(old) :]


def check_change(
    old: dict[str, Any],
    new: dict[str, Any],
    roles: set[str],
    task_id: str,
    documents: DocumentLookup,
) -> Change:
    """Decide whether `roles` may turn `old` into `new`: the accepted Change, or Invalid
    (nobody may, or a requirement is missing) or NotYourChange (not this party)."""
    changed = {
        key
        for key in (set(old) | set(new)) - SERVER_MANAGED
        if _comparable(old, key) != _comparable(new, key)
    }
    fixed = sorted(changed - OWNER_MAY_CHANGE)
    if fixed:
        raise invalid(
            f"Task.{fixed[0]}", f"Task.{fixed[0]} cannot change after the request is made"
        )
    new_notes = _appended(old.get("note") or [], new.get("note") or [], "note")
    new_outputs = _appended(old.get("output") or [], new.get("output") or [], "output")
    old_status, new_status = old["status"], new["status"]
    reason = status_reason_of(new)
    who: str | None
    if "owner" in changed:
        change, who = _forwarding(old_status, new_status, reason, ods_of(new.get("owner"))), OWNER
    elif old_status == new_status:
        if "statusReason" in changed:
            raise invalid(
                "Task.statusReason", "Task.statusReason changes only with a status change"
            )
        change, who = (
            _annotation(old_status, new_outputs, new_notes),
            (OWNER if new_outputs else None),
        )
    else:
        if (old_status, new_status) not in TRANSITIONS:
            raise invalid("Task.status", f"a Task cannot go from {old_status} to {new_status}")
        who, kind = TRANSITIONS[(old_status, new_status)]
        _requirements(kind, old, new, reason, new_notes, new_outputs, task_id, documents)
        change = Change(kind)
    # 403 only now, after every 422: the change is possible, but not for this caller.
    if who is not None and who not in roles:
        raise NotYourChange(f"only the Task's {who} may make this change")
    if who is None and not roles & {OWNER, REQUESTER}:
        raise NotYourChange("only the Task's owner or requester may change it")
    if REQUESTER in roles and OWNER not in roles and changed - REQUESTER_MAY_CHANGE:
        raise NotYourChange("only the Task's owner may change its output or owner")
    return change


def _forwarding(
    old_status: str, new_status: str, reason: str | None, new_owner: str | None
) -> Change:
    if old_status not in ("requested", "accepted") or new_status != "requested":
        raise invalid(
            "Task.status", "forwarding is from requested or accepted, and leaves the Task requested"
        )
    if reason != TaskStatusReason.FORWARDED:
        raise invalid("Task.statusReason", "forwarding needs statusReason forwarded")
    if new_owner is None:
        raise invalid("Task.owner", "the new owner must be an organisation by ODS identifier")
    return Change("forward", new_owner=new_owner)


def _annotation(status: str, new_outputs: list[Any], new_notes: list[Any]) -> Change:
    kinds = {kind for kind, _ in typed_items({"output": new_outputs}, "output", "task-output-type")}
    if kinds - {TaskOutputType.CLOCK_EXCEPTION}:
        raise invalid(
            "Task.output", "outputs other than clock exceptions come with a status change"
        )
    if kinds:
        if status not in OPEN_STATUSES:
            raise invalid(
                "Task.output", "a clock exception can be recorded only while the Task is open"
            )
        if not new_notes:
            raise invalid("Task.note", "a clock exception needs a note saying why (reg 8(2))")
    return Change("annotate", clock_exception=bool(kinds))


def _requirements(
    kind: str,
    old: dict[str, Any],
    new: dict[str, Any],
    reason: str | None,
    new_notes: list[Any],
    new_outputs: list[Any],
    task_id: str,
    documents: DocumentLookup,
) -> None:
    outputs = typed_items(new, "output", "task-output-type")
    if kind == "cancel" and reason != TaskStatusReason.WITHDRAWN_BY_REQUESTER:
        raise invalid("Task.statusReason", "cancelling needs statusReason withdrawn-by-requester")
    if kind == "reject":
        if reason not in REJECTION_REASONS:
            raise invalid(
                "Task.statusReason",
                "rejecting needs statusReason not-known-to-service, wrong-service, "
                "incompatible-with-duties or adverse-effect-on-functions",
            )
        if reason == TaskStatusReason.NOT_KNOWN_TO_SERVICE:
            # A child on a waiting list, or seen in the last 12 months, is known to the service.
            attested = {k for k, item in outputs if item.get("valueBoolean") is True}
            if (
                not {TaskOutputType.NOT_ON_WAITING_LIST, TaskOutputType.NOT_SEEN_IN_LAST_12_MONTHS}
                <= attested
            ):
                raise invalid(
                    "Task.output",
                    "not-known-to-service needs the not-on-waiting-list and "
                    "not-seen-in-last-12-months attestations, both true",
                )
        if reason in NEEDS_WRITTEN_REASONS and not _written_reasons(
            new_notes, outputs, task_id, documents
        ):
            raise invalid(
                "Task.note",
                f"{reason} needs written reasons: a note of at least "
                f"{MIN_REASONS_LENGTH} characters or a reasons-for-not-complying document",
            )
    if kind == "complete" and not _advice_delivered(old, outputs, task_id, documents):
        raise invalid(
            "Task.output",
            "completing needs an advice output referencing this Task's advice "
            "DocumentReference, held by the owner",
        )


def _written_reasons(
    new_notes: list[Any],
    outputs: list[tuple[str | None, dict[str, Any]]],
    task_id: str,
    documents: DocumentLookup,
) -> bool:
    if any(
        len(str(note.get("text", "")).strip()) >= MIN_REASONS_LENGTH
        for note in new_notes
        if isinstance(note, dict)
    ):
        return True
    return any(
        (doc := _document(item, documents)) is not None
        and doc.type == DocumentType.REASONS_FOR_NOT_COMPLYING
        and task_id in doc.related_tasks
        for kind, item in outputs
        if kind == TaskOutputType.ADVICE
    )


def _advice_delivered(
    old: dict[str, Any],
    outputs: list[tuple[str | None, dict[str, Any]]],
    task_id: str,
    documents: DocumentLookup,
) -> bool:
    allowed = advice_document_types(
        task_type_of(old) or TaskType.EHCNA_HEALTH_ADVICE, reason_of(old)
    )
    owner = ods_of(old.get("owner"))
    return any(
        (doc := _document(item, documents)) is not None
        and doc.type in allowed
        and doc.custodian == owner
        and task_id in doc.related_tasks
        for kind, item in outputs
        if kind == TaskOutputType.ADVICE
    )


def _document(item: dict[str, Any], documents: DocumentLookup) -> Document | None:
    reference = (item.get("valueReference") or {}).get("reference")
    return documents(reference) if isinstance(reference, str) else None
