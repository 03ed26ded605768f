"""Document use cases (`documents.md`, `access.md`): upload content, attach it to a Task's
patient as a DocumentReference, read and search documents under the read decision, and let
the custodian change a document's status. Each is audited, naming the custodian, so the
organisation that holds a document sees who read it, or tried to.

Every use case takes the session of the one transaction its front door opened, the
`Caller` and the current instant; it decides in the spec's order (400, 404, 412, 422, 403)
and raises a domain error, or writes and returns what the caller may see. Content goes
through `pipeline` (checked and encrypted while it streams); a backend that does not answer
is `Unavailable`, content that fails its integrity check `Corrupted`, shredded content
`Gone`.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Generic, TypeVar, cast

import pybase64
from sqlalchemy.orm import Session

from exchange.advice_requests.service import TaskPart, patient_and_roles
from exchange.advice_requests.workflow import OWNER, REQUESTER
from exchange.agreements.resources import reference_by_ods
from exchange.audit.events import AuditKind, Entity, Outcome
from exchange.audit.service import record, record_write
from exchange.caller import Caller
from exchange.codes import CONFIDENTIALITY_SYSTEM, EXT_SHA256, AccessDenialReason, ReviewReason
from exchange.db import Database, Write, core_connection, row_insert, values_of, write_together
from exchange.documents.access import (
    Decided,
    DocumentDecision,
    ReadableDocument,
    check_justification,
    decide_binary,
    decide_document,
    readable_document,
)
from exchange.documents.content import INLINE_CONTENT_LIMIT
from exchange.documents.housekeeping import UNATTACHED_LIFETIME
from exchange.documents.models import BinaryRow, DocumentRow
from exchange.documents.pipeline import (
    ContentBackends,
    SealedContent,
    add_binary,
    binary_write,
    content_intact,
    discarded_if_refused,
    logged_while_streaming,
    open_content,
    seal_from,
)
from exchange.documents.profile import (
    LA_DOCUMENT_TYPES,
    document_profile_issues,
    document_type_of,
    related_task_ids,
)
from exchange.documents.queries import (
    DocumentFilters,
    SortKey,
    matches_resource,
    related_readable,
    sort_position,
)
from exchange.errors import (
    AccessDenied,
    DomainError,
    Forbidden,
    NotFound,
    Subject,
    TooLarge,
    invalid,
)
from exchange.fhir.validation import validate_resource
from exchange.patients.service import CUSTODIAN, access_write, visible_patient_id
from exchange.search import Found, Paging, page_of
from exchange.versions import (
    all_versions,
    check_version,
    instant,
    keep_version,
    read_version,
    stamp,
    version_write,
)

_T = TypeVar("_T")


def binary_resource(row: BinaryRow) -> dict[str, Any]:
    """The Binary's metadata as FHIR (never its content)."""
    resource: dict[str, Any] = {
        "resourceType": "Binary",
        "id": str(row.id),
        "meta": {"versionId": "1", "lastUpdated": instant(row.created)},
        "contentType": row.content_type,
    }
    if row.document_id is not None:
        resource["securityContext"] = {"reference": f"DocumentReference/{row.document_id}"}
    return resource


def _id(text: str, resource_type: str) -> uuid.UUID:
    """The id in a reference the resource makes; one that cannot be an id names nothing
    that exists (404, as for a URL)."""
    try:
        return uuid.UUID(text)
    except ValueError:
        raise NotFound(resource_type) from None


def _subject(session: Session, document: ReadableDocument, decision: DocumentDecision) -> Subject:
    """What a read of `document` concerns: the document, its patient, and the agreement
    and Consents that decided it; and its custodian, whose audit trail shows the read."""
    entities = [
        Entity(f"DocumentReference/{document.id}"),
        Entity(f"Patient/{document.patient_id}", "patient"),
    ]
    if decision.agreement is not None:
        entities.append(Entity(f"Contract/{decision.agreement}", "agreement"))
    entities += [Entity(f"Consent/{consent}", "consent") for consent in decision.consent_ids]
    return Subject(tuple(entities), document.patient_id, document.custodian_ods)


def _allowed(
    session: Session, document: ReadableDocument, decision: DocumentDecision, unseen: NotFound
) -> Subject:
    """What an allowed read concerns. Refused: `unseen` for a caller who may not know the
    document exists, else AccessDenied naming what refused it (audited with it once the
    refused work has been rolled back)."""
    if not decision.visible:
        raise unseen
    subject = _subject(session, document, decision)
    if not decision.allowed:
        reason = decision.reason or AccessDenialReason.NO_CONSENT
        raise AccessDenied(reason, f"disclosure refused: {reason.value}", subject=subject)
    return subject


def _record_read(
    session: Session,
    caller: Caller,
    kind: AuditKind,
    subject: Subject,
    decision: DocumentDecision,
    now: datetime,
) -> None:
    """Audit an allowed read; a break-glass one carries its justification and is queued
    for IG review (`access.md`)."""
    record(
        session,
        caller.audit_entry(
            kind,
            entities=subject.entities,
            patient_id=subject.patient_id,
            custodian=subject.custodian,
            justification=caller.justification if decision.break_glass else None,
            review_reason=ReviewReason.BREAK_GLASS if decision.break_glass else None,
            purpose=decision.purpose,
        ),
        at=now,
    )


def _readable_document(
    session: Session, caller: Caller, document_id: uuid.UUID, kind: AuditKind, now: datetime
) -> ReadableDocument:
    """The document, if the read decision allows the caller to read it; the read audited."""
    document = readable_document(session, document_id, caller, now)
    if document is None:
        raise NotFound("DocumentReference", document_id)
    decision = decide_document(session, document, caller, now)
    subject = _allowed(session, document, decision, NotFound("DocumentReference", document_id))
    _record_read(session, caller, kind, subject, decision, now)
    return document


# --- content ------------------------------------------------------------------------------


def upload_binary(
    database: Database,
    caller: Caller,
    backends: ContentBackends,
    pieces: Iterable[bytes],
    content_type: str,
    declared_size: int | None,
    expected_sha256: str | None,
    max_bytes: int,
    now: datetime,
) -> dict[str, Any]:
    """Upload document content, streamed through the checks and encrypted into the store
    before the transaction that records it begins (blob first, then the row: on SQLite the
    writer lock is not held while the bytes arrive); `declared_size` (Content-Length) over
    the limit is refused before a byte is read. Unattached, it is readable only by the
    caller's organisation until a DocumentReference takes it (within 24 hours, or the
    sweeper shreds it)."""
    if declared_size is not None and declared_size > max_bytes:
        raise TooLarge(f"the document is larger than {max_bytes} bytes")
    content = seal_from(backends, pieces, content_type, max_bytes, expected_sha256)
    with discarded_if_refused(backends, content), database.transaction() as session:
        row = add_binary(session, content, caller.organisation_id, now)
        record(
            session,
            caller.audit_entry(AuditKind.CREATE, entities=(Entity(f"Binary/{row.id}"),)),
            at=now,
        )
    return binary_resource(row)


@dataclass(frozen=True, slots=True)
class BinaryDisclosure:
    """A Binary the caller may read, the read audited: what a response needs before its
    first byte, and `open` for the content once the read's transaction has committed (so
    the audit record exists before any byte is sent)."""

    resource: dict[str, Any]
    content_type: str
    size: int
    #: Lowercase hex SHA-256 of the plaintext.
    sha256: str
    #: The document's title (for a download's file name), None while unattached.
    title: str | None
    stored: BinaryRow = field(repr=False)

    @property
    def binary_id(self) -> uuid.UUID:
        """The Binary's id."""
        return self.stored.id

    def open(self, backends: ContentBackends) -> Iterator[bytes]:
        """The plaintext, its first chunk verified before this returns: Gone if the content
        was shredded, Corrupted if it fails its integrity check, Unavailable if a backend
        does not answer. A later chunk failing authentication ends the stream, logged."""
        with content_intact(self.stored.id):
            stream = open_content(self.stored, backends.blob_store(), backends.key_provider())
        return logged_while_streaming(stream, self.stored.id)


def read_binary(
    session: Session, caller: Caller, binary_id: uuid.UUID, now: datetime
) -> BinaryDisclosure:
    """Decide and audit a read of a Binary's content: unattached, only its uploader; else
    under its DocumentReference's read decision, refused as 404 without ever naming the
    document to a caller who may not know it."""
    binary = session.get(BinaryRow, binary_id)
    if binary is None:
        raise NotFound("Binary", binary_id)
    decision, document = decide_binary(session, binary, caller, now)
    unseen = NotFound("Binary", binary_id)
    title = None
    if document is None:
        if not decision.visible:
            raise unseen
        record(
            session,
            caller.audit_entry(AuditKind.READ, entities=(Entity(f"Binary/{binary.id}"),)),
            at=now,
        )
    else:
        subject = _allowed(session, document, decision, unseen)
        _record_read(session, caller, AuditKind.READ, subject, decision, now)
        title = document.resource["content"][0]["attachment"].get("title")
    resource = binary_resource(binary)
    session.expunge(binary)  # opened after the transaction: the row's values, not a live row
    return BinaryDisclosure(
        resource, binary.content_type, binary.size, binary.sha256, title, binary
    )


# --- DocumentReference ----------------------------------------------------------------------


def _sealed_inline(
    backends: ContentBackends, data: str, content_type: str, max_bytes: int
) -> SealedContent:
    """A new document's inline data (at most 10 MiB), checked, encrypted and stored."""
    try:
        # pybase64 (SIMD): the standard library's decoder was a tenth of a 64 KiB inline
        # upload (bench/profiles/api-load.md, "Fourth pass"). As strict: no whitespace, no
        # character outside the alphabet, padding only where it belongs.
        decoded = pybase64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise invalid(
            "DocumentReference.content[0].attachment.data", "attachment.data is not base64", "value"
        ) from None
    if len(decoded) > INLINE_CONTENT_LIMIT:
        raise TooLarge("inline content is limited to 10 MiB; upload a Binary first")
    return seal_from(backends, [decoded], content_type, max_bytes)


def _unattached_upload(
    session: Session, caller: Caller, attachment: dict[str, Any], now: datetime
) -> BinaryRow:
    """The caller's own unattached upload of the last 24 hours that `attachment.url` names,
    locked for the document that takes it."""
    binary_id = _id(str(attachment["url"]).removeprefix("Binary/"), "Binary")
    binary = session.get(BinaryRow, binary_id, with_for_update=True)
    if (
        binary is None
        or binary.uploader_id != caller.organisation_id
        or binary.document_id is not None
        or now - binary.created > UNATTACHED_LIFETIME
    ):
        raise invalid(
            "DocumentReference.content[0].attachment.url",
            "attachment.url must be an unattached Binary your organisation uploaded in "
            "the last 24 hours",
        )
    return binary


@dataclass(frozen=True, slots=True)
class _Held(Generic[_T]):
    """Work done before a transaction began: what it returned, or the domain error it
    raised, kept for the point inside the transaction where the spec's order puts that
    refusal."""

    result: _T | None = None
    refusal: DomainError | None = None

    def get(self) -> _T:
        """The result, or the refusal raised now."""
        if self.refusal is not None:
            raise self.refusal
        return cast(_T, self.result)


def _held(work: Callable[[], _T]) -> _Held[_T]:
    try:
        return _Held(result=work())
    except DomainError as error:
        return _Held(refusal=error)


def _supersede(
    session: Session, resource: dict[str, Any], custodian_id: uuid.UUID, now: datetime
) -> list[uuid.UUID]:
    """`relatesTo replaces`: the old version becomes superseded in the same transaction."""
    replaced = []
    for relation in resource.get("relatesTo") or []:
        if relation.get("code") != "replaces":
            continue
        target = str((relation.get("target") or {}).get("reference", ""))
        old_id = _id(target.removeprefix("DocumentReference/"), "DocumentReference")
        old = session.get(DocumentRow, old_id, with_for_update=True)
        if old is None or old.custodian_id != custodian_id or old.status != "current":
            raise invalid(
                "DocumentReference.relatesTo", "only a current document of your own can be replaced"
            )
        old.version += 1
        old.status = "superseded"
        old.last_updated = now
        old.resource = stamp({**old.resource, "status": "superseded"}, old.id, old.version, now)
        keep_version(session, old.resource, now)
        replaced.append(old.id)
    return replaced


_INSERT_DOCUMENT: Final = row_insert(DocumentRow)
#: What the model validates in place of inline content (`_inline_set_aside`).
_STAND_IN: Final = "AA=="


def _inline_set_aside(data: Any) -> tuple[Any, str | None]:
    """The DocumentReference with a stand-in for its inline `attachment.data`, and that
    data (None: none inline). The model would decode the base64 only for `_content_for` to
    decode it again, strictly (no whitespace), and store it: decoding once took 7% of a
    64 KiB upload off (bench/profiles/api-load.md, "Third pass")."""
    try:
        attachment = data["content"][0]["attachment"]
        inline = attachment["data"]
    except (KeyError, IndexError, TypeError):
        return data, None
    if not isinstance(inline, str) or not isinstance(attachment, dict):
        return data, None
    content = [{**data["content"][0], "attachment": {**attachment, "data": _STAND_IN}}]
    return {**data, "content": content + data["content"][1:]}, inline


def attach_document(
    database: Database,
    caller: Caller,
    backends: ContentBackends,
    data: Any,
    max_document_bytes: int,
    now: datetime,
) -> dict[str, Any]:
    """Record a document for a Task's patient, held encrypted, its custodian the caller:
    an advice document from the Task's owner, an LA document from its requester. The
    content is an upload of the caller's (`Binary/<id>`) or inline data; `relatesTo
    replaces` supersedes the caller's earlier version.

    What needs no database (validating the resource, decoding and storing inline content)
    is done before the transaction begins: on SQLite the writer lock was held through it,
    half of a 64 KiB upload's time, so uploads queued behind each other's validation and
    fsync (bench/profiles/api-load.md, "Fourth pass"). A refusal it finds is raised where
    the spec's order puts it, after the checks made in the transaction; content stored for
    a refused request is deleted at once."""
    if not isinstance(data, dict) or data.get("resourceType") != "DocumentReference":
        validate_resource(data, "DocumentReference", document_profile_issues)
    subject = str((data.get("subject") or {}).get("reference", ""))
    named = _id(subject[8:], "Patient") if subject.startswith("Patient/") else None
    tasks = related_task_ids(data)
    task_id = _id(tasks[0], "Task") if tasks else None
    checked, inline = _inline_set_aside(data)
    validated = _held(
        lambda: validate_resource(checked, "DocumentReference", document_profile_issues)
    )
    sealed: _Held[SealedContent] | None = None
    if validated.result is not None and inline is not None:
        declared = str(validated.result["content"][0]["attachment"].get("contentType", ""))
        sealed = _held(lambda: _sealed_inline(backends, inline, declared, max_document_bytes))
    stored_early = sealed.result if sealed is not None else None
    with discarded_if_refused(backends, stored_early), database.transaction() as session:
        # Which patient the Task is for, the caller's roles in it, its name and whether
        # it may see the patient named: one query.
        part = (
            patient_and_roles(session, task_id, caller.organisation_id, named) if task_id else None
        )
        if named is not None:
            sees = (
                part.sees_patient
                if part is not None
                else visible_patient_id(session, named, caller.organisation_id) is not None
            )
            if not sees:
                raise NotFound("Patient", subject[8:])
        if tasks and (part is None or not part.roles):
            raise NotFound("Task", tasks[0])
        resource = validated.get()
        if named is None or task_id is None or part is None:
            raise NotFound("Patient")
        if part.patient_id != named:
            raise invalid("DocumentReference.context.related", "the Task is for another patient")
        doc_type = document_type_of(resource) or ""
        expected_role = REQUESTER if doc_type in LA_DOCUMENT_TYPES else OWNER
        if expected_role not in part.roles:
            raise Forbidden(f"a {doc_type} document comes from the Task's {expected_role}")
        document_id = uuid.uuid4()
        content = sealed.get() if sealed is not None else None
        written: tuple[Write, ...] = ()
        if content is None:
            binary = _unattached_upload(session, caller, resource["content"][0]["attachment"], now)
            binary.document_id = document_id
        else:
            binary, write = binary_write(content, caller.organisation_id, now, document_id)
            written = (write,)
        return _recorded_document(
            session,
            caller,
            resource,
            doc_type,
            part,
            named,
            task_id,
            binary,
            document_id,
            now,
            written,
        )


def _recorded_document(
    session: Session,
    caller: Caller,
    resource: dict[str, Any],
    doc_type: str,
    part: TaskPart,
    patient_id: uuid.UUID,
    task_id: uuid.UUID,
    binary: BinaryRow,
    document_id: uuid.UUID,
    now: datetime,
    written: tuple[Write, ...] = (),
) -> dict[str, Any]:
    """The document `document_id`: the earlier version it replaces superseded, its row,
    its first version, the custodian's access and the audit record, for content `binary`
    held (`written` first: its row, when it is new); the stored resource. The rows are
    written together (`db.write_together`: one statement on PostgreSQL)."""
    superseded = _supersede(session, resource, caller.organisation_id, now)
    given = resource["content"][0]["attachment"]
    attachment = {k: v for k, v in given.items() if k not in ("data", "url")}
    attachment.update(
        {
            "url": f"Binary/{binary.id}",
            "contentType": binary.content_type,
            "size": binary.size,
            "hash": base64.b64encode(binary.sha1).decode("ascii"),
            "extension": [{"url": EXT_SHA256, "valueString": binary.sha256}],
        }
    )
    body = {
        **resource,
        "content": [{**resource["content"][0], "attachment": attachment}],
        "custodian": reference_by_ods(caller.organisation, part.organisation_name),
        "date": instant(now),
        "securityLabel": [{"coding": [{"system": CONFIDENTIALITY_SYSTEM, "code": "R"}]}],
    }
    stored = stamp(body, document_id, 1, now)
    row = DocumentRow(
        id=document_id,
        patient_id=patient_id,
        custodian_id=caller.organisation_id,
        task_id=task_id,
        binary_id=binary.id,
        doc_type=doc_type,
        status=stored["status"],
        date=now,
        version=1,
        last_updated=now,
        resource=stored,
    )
    entities = [
        Entity(f"DocumentReference/{document_id}"),
        Entity(f"Binary/{binary.id}"),
        Entity(f"Patient/{patient_id}", "patient"),
        Entity(f"Task/{task_id}"),
    ]
    entities += [Entity(f"DocumentReference/{old}") for old in superseded]
    audit, _ = record_write(
        caller.audit_entry(
            AuditKind.CREATE,
            entities=tuple(entities),
            patient_id=patient_id,
            custodian=caller.organisation,
        ),
        at=now,
    )
    # Core inserts, not the unit of work (bench/profiles/api-load.md, "Third pass").
    write_together(
        core_connection(session),
        (
            *written,
            Write(_INSERT_DOCUMENT, values_of(row)),
            version_write(stored, now),
            access_write(patient_id, caller.organisation_id, CUSTODIAN, now),
            audit,
        ),
    )
    return stored


def read_document(
    session: Session, caller: Caller, document_id: uuid.UUID, now: datetime
) -> dict[str, Any]:
    """A document's metadata, if the read decision allows."""
    return _readable_document(session, caller, document_id, AuditKind.READ, now).resource


def read_document_version(
    session: Session, caller: Caller, document_id: uuid.UUID, version: int | None, now: datetime
) -> dict[str, Any]:
    """One version of a document's metadata, under the same decision as a read."""
    document = _readable_document(session, caller, document_id, AuditKind.VREAD, now)
    stored = read_version(session, "DocumentReference", document.id, version)
    if stored is None:
        raise NotFound("DocumentReference", f"{document_id}/_history/{version}")
    return stored


def document_history(
    session: Session, caller: Caller, document_id: uuid.UUID, now: datetime
) -> list[dict[str, Any]]:
    """Every version of a document's metadata, newest first, under the same decision."""
    document = _readable_document(session, caller, document_id, AuditKind.HISTORY, now)
    return all_versions(session, "DocumentReference", document.id)


def change_document_status(
    session: Session,
    caller: Caller,
    document_id: uuid.UUID,
    data: Any,
    if_match: str | None,
    now: datetime,
) -> dict[str, Any]:
    """The custodian marks a current document `superseded` or `entered-in-error`; nothing
    else changes, and nothing is deleted. Anyone else is refused as the read decision
    refuses them, or (a permitted reader) as not the custodian."""
    document = session.get(DocumentRow, document_id, with_for_update=True)
    if document is None:
        raise NotFound("DocumentReference", document_id)
    if document.custodian_id != caller.organisation_id:
        unseen = NotFound("DocumentReference", document_id)
        readable = readable_document(session, document_id, caller, now)
        if readable is None:
            raise unseen
        _allowed(session, readable, decide_document(session, readable, caller, now), unseen)
        raise Forbidden("only the custodian may change a document")
    check_version(document.version, if_match)
    if not isinstance(data, dict) or data.get("resourceType") != "DocumentReference":
        validate_resource(data, "DocumentReference", document_profile_issues)
    current = document.resource
    changed = sorted(
        k
        for k in set(current) | set(data)
        if k not in ("meta", "id", "status", "text") and current.get(k) != data.get(k)
    )
    if changed:
        raise invalid(
            f"DocumentReference.{changed[0]}",
            f"only DocumentReference.status may change (not {changed[0]})",
        )
    status = data.get("status")
    if status not in ("superseded", "entered-in-error") or document.status != "current":
        raise invalid(
            "DocumentReference.status",
            "a current document may become superseded or entered-in-error, nothing else",
        )
    document.version += 1
    document.status = status
    document.last_updated = now
    document.resource = stamp({**current, "status": status}, document.id, document.version, now)
    keep_version(session, document.resource, now)
    record(
        session,
        caller.audit_entry(
            AuditKind.UPDATE,
            entities=(
                Entity(f"DocumentReference/{document.id}"),
                Entity(f"Patient/{document.patient_id}", "patient"),
            ),
            patient_id=document.patient_id,
            custodian=caller.organisation,
            outcome_desc=status,
        ),
        at=now,
    )
    return document.resource


def search_documents(
    session: Session,
    caller: Caller,
    filters: DocumentFilters,
    sort: SortKey,
    paging: Paging,
    query: str | None,
    now: datetime,
) -> Found:
    """The documents matching `filters` that the caller may read, in `sort` order (newest
    first unless told). Documents the read decision refuses are left out, so `total`
    counts only what the caller may see; each left out for consent (or a break-glass
    refusal) is still audited as a refused disclosure (`access.md`)."""
    check_justification(caller)
    shown: list[ReadableDocument] = []
    # One agreement per custodian and one consent decision per patient (and purpose), not
    # one per document; the query found only documents the caller is related to.
    decided = Decided()
    for document in related_readable(session, caller, filters):
        if not matches_resource(document.resource, filters):
            continue
        decision = decide_document(session, document, caller, now, decided)
        if decision.allowed:
            shown.append(document)
        elif decision.visible and decision.reason not in (None, AccessDenialReason.NO_AGREEMENT):
            subject = _subject(session, document, decision)
            record(
                session,
                caller.audit_entry(
                    AuditKind.READ,
                    Outcome.MINOR_FAILURE,
                    entities=subject.entities,
                    patient_id=subject.patient_id,
                    custodian=subject.custodian,
                    outcome_desc=str(decision.reason),
                    purpose=decision.purpose,
                ),
                at=now,
            )
    record(session, caller.audit_entry(AuditKind.SEARCH, query=query), at=now)
    page = page_of(shown, paging, lambda document: sort_position(document, sort))
    return Found([document.resource for document in page.rows], len(shown), page.next)
