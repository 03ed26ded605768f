"""`DocumentReference`: attach uploaded (or inline) content to a Task's patient, supersede
an earlier version, and read or search under the access decision of `access.md`."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import timedelta
from typing import Any, Final

from flask import Response, g, request
from sqlalchemy import select
from sqlalchemy.orm import Session

from exchange import codes
from exchange.advice_requests.models import TaskRow
from exchange.advice_requests.service import organisation_reference, roles_of
from exchange.agreements.models import Organisation
from exchange.api.auditing import audit_request, request_purpose
from exchange.api.context import services
from exchange.api.fhir import bp
from exchange.api.fhir.responses import fhir_response, searchset
from exchange.api.fhir.rest import (
    check_if_match,
    history_bundle,
    read_response,
    request_body,
    resource_uuid,
    version_number,
    write_response,
)
from exchange.api.fhir.search import (
    Page,
    SearchRequest,
    code_value,
    date_clause,
    nhs_number_value,
    ods_value,
    page_urls,
    parse_date,
    parse_search,
    reference_id,
    split_token,
    split_values,
)
from exchange.api.guards import requires_scope
from exchange.api.limits import INLINE_CONTENT_LIMIT
from exchange.audit.events import AuditKind, Entity, Outcome
from exchange.consent.decision import Decision
from exchange.documents.access import DocumentDecision, Reader, decide_document, related_to
from exchange.documents.content import ContentError
from exchange.documents.models import BinaryRow, DocumentRow
from exchange.documents.profile import (
    LA_DOCUMENT_TYPES,
    document_profile_issues,
    document_type_of,
    related_task_ids,
)
from exchange.documents.service import store_content
from exchange.errors import AccessDenied, Issue, Subject
from exchange.fhir.capability import ResourceCapability, SearchParam
from exchange.fhir.outcome import FhirError, invalid, not_found
from exchange.fhir.validation import validate_resource
from exchange.patients.models import Patient
from exchange.patients.service import CUSTODIAN, grant_access, visible_patient
from exchange.versions import all_versions, instant, keep_version, read_version, stamp

DOCUMENT_REFERENCE = ResourceCapability(
    type="DocumentReference",
    interactions=("create", "read", "vread", "update", "search-type", "history-instance"),
    search_params=tuple(SearchParam(n, k) for n, k in (
        ("patient", "reference"), ("patient.identifier", "token"), ("subject", "reference"), ("type", "token"),
        ("category", "token"), ("custodian", "reference"), ("author", "reference"), ("date", "date"),
        ("status", "token"), ("related", "reference"), ("_lastUpdated", "date"))),
    profile=codes.PROFILE_HEALTH_ADVICE,
)

#: R4's required binding for DocumentReference.status.
DOCUMENT_STATUSES: Final = ("current", "superseded", "entered-in-error")
UNATTACHED_LIFETIME: Final = timedelta(hours=24)
_JUSTIFICATION: Final = (20, 1000)


def reader() -> Reader:
    """The current caller as a document reader, with the purpose of use (and, for
    break-glass purposes, a justification of 20 to 1000 characters)."""
    purpose = request_purpose()
    if purpose in codes.BREAK_GLASS_PURPOSES:
        justification = request.headers.get("X-Justification", "").strip()
        if not _JUSTIFICATION[0] <= len(justification) <= _JUSTIFICATION[1]:
            raise FhirError(400, "required", "break-glass access needs X-Justification of 20 to 1000 characters")
    caller = g.caller
    return Reader(caller.organisation_id, caller.organisation, caller.role, caller.break_glass, purpose)


def _decision_entities(document: DocumentRow, decision: DocumentDecision) -> tuple[Entity, ...]:
    entities = [Entity(f"DocumentReference/{document.id}"), Entity(f"Patient/{document.patient_id}", "patient")]
    if decision.agreement is not None:
        entities.append(Entity(f"Contract/{decision.agreement.id}", "agreement"))
    entities += [Entity(f"Consent/{consent}", "consent") for consent in decision.consent_ids]
    return tuple(entities)


def enforce(session: Session, document: DocumentRow, kind: AuditKind | None = None) -> DocumentDecision:
    """Decide a read of `document`; 404 or 403 (audited with the deciding records) if refused."""
    decision = decide_document(session, document, reader(), services().clock.now())
    if not decision.visible:
        raise not_found("DocumentReference", str(document.id))
    justification = request.headers.get("X-Justification") if decision.break_glass else None
    if not decision.allowed:
        reason = decision.reason or codes.AccessDenialReason.NO_CONSENT
        # Audited by the error handler once this request's transaction has ended: a second
        # write transaction opened here would wait on this one (SQLite) for nothing.
        raise AccessDenied(reason, f"disclosure refused: {reason.value}", subject=Subject(
            _decision_entities(document, decision), document.patient_id, _custodian_ods(session, document)))
    audit_request(session, entities=_decision_entities(document, decision), patient_id=document.patient_id,
                  custodian=_custodian_ods(session, document), kind=kind, justification=justification,
                  review_reason=codes.ReviewReason.BREAK_GLASS if decision.break_glass else None)
    return decision


def _custodian_ods(session: Session, document: DocumentRow) -> str | None:
    organisation = session.get(Organisation, document.custodian_id)
    return organisation.ods if organisation else None


def _attach_binary(session: Session, attachment: dict[str, Any]) -> BinaryRow:
    now = services().clock.now()
    if "data" in attachment:
        try:
            data = base64.b64decode(attachment["data"], validate=True)
        except (binascii.Error, ValueError):
            raise invalid([Issue("error", "value", "attachment.data is not base64",
                                 ("DocumentReference.content[0].attachment.data",))]) from None
        if len(data) > INLINE_CONTENT_LIMIT:
            raise FhirError(413, "too-costly", "inline content is limited to 10 MiB; upload a Binary first")
        try:
            return store_content(session, services().blob_store(), services().key_provider(), [data],
                                 str(attachment.get("contentType", "")), services().settings.max_document_bytes,
                                 g.caller.organisation_id, now)
        except ContentError as error:
            raise FhirError(error.status, "invalid" if error.status == 422 else "not-supported", str(error)) from None
    binary_id = resource_uuid("Binary", str(attachment["url"]).removeprefix("Binary/"))
    binary = session.get(BinaryRow, binary_id, with_for_update=True)
    if (binary is None or binary.uploader_id != g.caller.organisation_id or binary.document_id is not None
            or now - binary.created > UNATTACHED_LIFETIME):
        raise invalid([Issue("error", "business-rule", "attachment.url must be an unattached Binary your "
                             "organisation uploaded in the last 24 hours", ("DocumentReference.content[0].attachment.url",))])
    return binary


@bp.post("/DocumentReference")
@requires_scope("DocumentReference", "c")
def document_create() -> Response:
    """Record a document for a Task's patient, held encrypted; its custodian is the caller."""
    data = request_body()
    if not isinstance(data, dict) or data.get("resourceType") != "DocumentReference":
        validate_resource(data, "DocumentReference", document_profile_issues)
    now = services().clock.now()
    with services().database.transaction() as session:
        subject = str((data.get("subject") or {}).get("reference", ""))
        patient = None
        if subject.startswith("Patient/"):
            patient = visible_patient(session, resource_uuid("Patient", subject[8:]), g.caller.organisation_id)
            if patient is None:
                raise not_found("Patient", subject[8:])
        tasks = related_task_ids(data)
        task = session.get(TaskRow, resource_uuid("Task", tasks[0])) if tasks else None
        roles = roles_of(session, task.id, g.caller.organisation_id) if task is not None else set()
        if tasks and not roles:
            raise not_found("Task", tasks[0])
        resource = validate_resource(data, "DocumentReference", document_profile_issues)
        if patient is None or task is None:
            raise not_found("Patient")
        if task.patient_id != patient.id:
            raise invalid([Issue("error", "business-rule", "the Task is for another patient",
                                 ("DocumentReference.context.related",))])
        doc_type = document_type_of(resource) or ""
        expected_role = "requester" if doc_type in LA_DOCUMENT_TYPES else "owner"
        if expected_role not in roles:
            raise FhirError(403, "forbidden", f"a {doc_type} document comes from the Task's {expected_role}")
        binary = _attach_binary(session, resource["content"][0]["attachment"])
        document_id = uuid.uuid4()
        binary.document_id = document_id
        caller = session.get(Organisation, g.caller.organisation_id)
        if caller is None:
            raise RuntimeError("the caller's organisation is not registered")
        superseded = _supersede(session, resource, caller, now)
        attachment = {k: v for k, v in resource["content"][0]["attachment"].items() if k not in ("data", "url")}
        attachment.update({
            "url": f"Binary/{binary.id}", "contentType": binary.content_type, "size": binary.size,
            "hash": base64.b64encode(binary.sha1).decode("ascii"),
            "extension": [{"url": codes.EXT_SHA256, "valueString": binary.sha256}],
        })
        body = {**resource, "content": [{**resource["content"][0], "attachment": attachment}],
                "custodian": organisation_reference(caller), "date": instant(now),
                "securityLabel": [{"coding": [{"system": codes.CONFIDENTIALITY_SYSTEM, "code": "R"}]}]}
        stored = stamp(body, document_id, 1, now)
        session.add(DocumentRow(id=document_id, patient_id=patient.id, custodian_id=caller.id, task_id=task.id,
                                binary_id=binary.id, doc_type=doc_type, status=stored["status"], date=now, version=1,
                                last_updated=now, resource=stored))
        session.flush()
        keep_version(session, stored, now)
        grant_access(session, patient.id, caller.id, CUSTODIAN, now)
        entities = [Entity(f"DocumentReference/{document_id}"), Entity(f"Binary/{binary.id}"),
                    Entity(f"Patient/{patient.id}", "patient"), Entity(f"Task/{task.id}")]
        entities += [Entity(f"DocumentReference/{old}") for old in superseded]
        audit_request(session, entities=tuple(entities), patient_id=patient.id, custodian=caller.ods,
                      kind=AuditKind.CREATE)
    return write_response(stored, 201)


def _supersede(session: Session, resource: dict[str, Any], caller: Organisation, now: Any) -> list[uuid.UUID]:
    """`relatesTo replaces`: the old version becomes superseded in the same transaction."""
    replaced = []
    for relation in resource.get("relatesTo") or []:
        if relation.get("code") != "replaces":
            continue
        target = str((relation.get("target") or {}).get("reference", ""))
        old = session.get(DocumentRow, resource_uuid("DocumentReference", target.removeprefix("DocumentReference/")),
                          with_for_update=True)
        if old is None or old.custodian_id != caller.id or old.status != "current":
            raise invalid([Issue("error", "business-rule", "only a current document of your own can be replaced",
                                 ("DocumentReference.relatesTo",))])
        old.version += 1
        old.status = "superseded"
        old.last_updated = now
        old.resource = stamp({**old.resource, "status": "superseded"}, old.id, old.version, now)
        keep_version(session, old.resource, now)
        replaced.append(old.id)
    return replaced


@bp.get("/DocumentReference/<resource_id>")
@requires_scope("DocumentReference", "r")
def document_read(resource_id: str) -> Response:
    """Read a document's metadata, if the access decision allows."""
    with services().database.transaction() as session:
        document = session.get(DocumentRow, resource_uuid("DocumentReference", resource_id))
        if document is None:
            raise not_found("DocumentReference", resource_id)
        enforce(session, document)
        resource = document.resource
    return read_response(resource)


SEARCH_PARAMS: Final = ("patient", "patient.identifier", "subject", "type", "category", "custodian",
                        "custodian:identifier", "author", "author:identifier", "date", "status", "related",
                        "_lastUpdated", "_sort")


def _coded(resource: dict[str, Any], element: str, values: list[str]) -> bool:
    concepts = resource.get(element) or []
    concepts = concepts if isinstance(concepts, list) else [concepts]
    codings = [c for concept in concepts if isinstance(concept, dict) for c in concept.get("coding", [])]
    return any(any(c.get("code") == code and system in (None, c.get("system")) for c in codings)
               for system, code in (split_token(v) for v in values))


def _authored_by(resource: dict[str, Any], values: list[str]) -> bool:
    identifiers = [(a.get("identifier") or {}) for a in resource.get("author") or [] if isinstance(a, dict)]
    return any(any(i.get("value") == code and system in (None, i.get("system")) for i in identifiers)
               for system, code in (split_token(v) for v in values))


@bp.get("/DocumentReference")
@requires_scope("DocumentReference", "s")
def document_search() -> Response:
    """Search documents, newest first; records the decision refuses are left out (each
    consent refusal audited), so `total` counts only what the caller may see."""
    search = parse_search(SEARCH_PARAMS)
    sort = search.params.pop("_sort", ["-date"])[0]
    if sort not in ("date", "-date", "_lastUpdated", "-_lastUpdated"):
        raise FhirError(400, "not-supported", "_sort must be date or _lastUpdated (with - for descending)")
    params = search.params
    conditions: list[Any] = []
    for name in ("patient", "subject"):
        for value in split_values(params.get(name, [])):
            conditions.append(DocumentRow.patient_id == reference_id(value, name, "Patient"))
    for value in split_values(params.get("patient.identifier", [])):
        number = nhs_number_value(value, "patient.identifier")
        conditions.append(DocumentRow.patient_id.in_(select(Patient.id).where(Patient.nhs_number == number)))
    if "type" in params:
        conditions.append(DocumentRow.doc_type.in_([code_value(v, "type", codes.DocumentType, codes.code_system_url("document-type"))
                                                    for v in split_values(params["type"])]))
    if "status" in params:
        conditions.append(DocumentRow.status.in_([code_value(v, "status", DOCUMENT_STATUSES)
                                                  for v in split_values(params["status"])]))
    for value in split_values(params.get("related", [])):
        conditions.append(DocumentRow.task_id == reference_id(value, "related", "Task"))
    custodians = split_values(params.get("custodian", []) + params.get("custodian:identifier", []))
    if custodians:
        conditions.append(DocumentRow.custodian_id.in_(select(Organisation.id).where(
            Organisation.ods.in_([ods_value(v, "custodian") for v in custodians]))))
    for value in params.get("date", []):
        conditions.append(date_clause(DocumentRow.date, parse_date(value, "date")))
    for value in params.get("_lastUpdated", []):
        conditions.append(date_clause(DocumentRow.last_updated, parse_date(value, "_lastUpdated")))
    authors = split_values(params.get("author", []) + params.get("author:identifier", []))
    categories = split_values(params.get("category", []))
    who = reader()
    moment = DocumentRow.last_updated if "lastUpdated" in sort else DocumentRow.date
    shown: list[DocumentRow] = []
    consent_decisions: dict[uuid.UUID, Decision] = {}  # one consent decision per patient
    now = services().clock.now()
    with services().database.transaction() as session:
        related = select(DocumentRow).where(related_to(who.organisation_id, who.role), *conditions)
        for document in session.scalars(related):
            if authors and not _authored_by(document.resource, authors):
                continue
            if categories and not _coded(document.resource, "category", categories):
                continue
            decision = decide_document(session, document, who, now, consent_decisions)
            if decision.allowed:
                shown.append(document)
            elif decision.visible and decision.reason not in (None, codes.AccessDenialReason.NO_AGREEMENT):
                audit_request(session, Outcome.MINOR_FAILURE, entities=_decision_entities(document, decision),
                              patient_id=document.patient_id, outcome_desc=str(decision.reason), kind=AuditKind.READ)
        audit_request(session)
        page = _page(shown, search, moment.key, descending=sort.startswith("-"), sort_name=sort.lstrip("-"))
    return fhir_response(searchset([d.resource for d in page.rows], len(shown), page.self_url, page.next_url,
                                   search.ignored_outcome()))


def _page(documents: list[DocumentRow], search: SearchRequest, key: str, descending: bool, sort_name: str) -> Page:
    """Keyset paging over the documents the caller may see, ordered by (`key`, id)."""
    documents.sort(key=lambda d: (getattr(d, key), str(d.id)), reverse=descending)
    if search.cursor is not None:
        try:
            position = (parse_date(str(search.cursor["at"]), "_cursor").low, str(search.cursor["id"]))
        except (KeyError, FhirError):
            raise FhirError(400, "invalid", "_cursor is not a cursor this server issued") from None
        documents = [d for d in documents
                     if ((getattr(d, key), str(d.id)) < position if descending else (getattr(d, key), str(d.id)) > position)]
    rows = documents[: search.count]
    more = len(documents) > search.count
    next_position = ({"at": getattr(rows[-1], key).isoformat(timespec="microseconds"), "id": str(rows[-1].id)}
                     if more and rows else None)
    search.params["_sort"] = [f"-{sort_name}" if descending else sort_name]
    self_url, next_url = page_urls(search, "/fhir/DocumentReference", next_position)
    return Page(rows, self_url, next_url)


def _readable_document(session: Session, resource_id: str) -> DocumentRow:
    document = session.get(DocumentRow, resource_uuid("DocumentReference", resource_id))
    if document is None:
        raise not_found("DocumentReference", resource_id)
    enforce(session, document)
    return document


@bp.get("/DocumentReference/<resource_id>/_history/<version>")
@requires_scope("DocumentReference", "r")
def document_vread(resource_id: str, version: str) -> Response:
    """One version of a document's metadata, under the same decision as a read."""
    with services().database.transaction() as session:
        document = _readable_document(session, resource_id)
        stored = read_version(session, "DocumentReference", document.id, version_number(version))
        if stored is None:
            raise not_found("DocumentReference", f"{resource_id}/_history/{version}")
    return fhir_response(stored)


@bp.get("/DocumentReference/<resource_id>/_history")
@requires_scope("DocumentReference", "r")
def document_history(resource_id: str) -> Response:
    """Every version of a document's metadata."""
    with services().database.transaction() as session:
        document = _readable_document(session, resource_id)
        bundle = history_bundle(all_versions(session, "DocumentReference", document.id))
    return fhir_response(bundle)


@bp.put("/DocumentReference/<resource_id>")
@requires_scope("DocumentReference", "u")
def document_update(resource_id: str) -> Response:
    """The custodian changes a document's status (`superseded`, `entered-in-error`); nothing
    else changes, and nothing is deleted."""
    data = request_body()
    now = services().clock.now()
    with services().database.transaction() as session:
        document = session.get(DocumentRow, resource_uuid("DocumentReference", resource_id), with_for_update=True)
        if document is None:
            raise not_found("DocumentReference", resource_id)
        if document.custodian_id != g.caller.organisation_id:
            enforce(session, document)  # 404 or 403 for a reader; a permitted reader still may not change it
            raise FhirError(403, "forbidden", "only the custodian may change a document")
        check_if_match(document.version)
        if not isinstance(data, dict) or data.get("resourceType") != "DocumentReference":
            validate_resource(data, "DocumentReference", document_profile_issues)
        current = document.resource
        changed = sorted(k for k in set(current) | set(data)
                         if k not in ("meta", "id", "status", "text") and current.get(k) != data.get(k))
        if changed:
            raise invalid([Issue("error", "business-rule", f"only DocumentReference.status may change (not {changed[0]})",
                                 (f"DocumentReference.{changed[0]}",))])
        status = data.get("status")
        if status not in ("superseded", "entered-in-error") or document.status != "current":
            raise invalid([Issue("error", "business-rule", "a current document may become superseded or "
                                 "entered-in-error, nothing else", ("DocumentReference.status",))])
        document.version += 1
        document.status = status
        document.last_updated = now
        document.resource = stamp({**current, "status": status}, document.id, document.version, now)
        keep_version(session, document.resource, now)
        audit_request(session, entities=(Entity(f"DocumentReference/{document.id}"),
                                         Entity(f"Patient/{document.patient_id}", "patient")),
                      patient_id=document.patient_id, outcome_desc=status)
        stored = document.resource
    return write_response(stored, 200)
