"""`Binary`: streaming upload of document content and streaming, verified download
(`documents.md`). A Binary not yet attached to a DocumentReference is readable only by the
organisation that uploaded it; once attached, reads follow the document's access decision."""

from __future__ import annotations

import base64
import logging
import re
import uuid
from collections.abc import Iterator
from typing import Any, Final

from flask import Response, g, request, stream_with_context

from exchange.api.auditing import audit_request
from exchange.api.context import services
from exchange.api.fhir import bp
from exchange.api.fhir.document import enforce
from exchange.api.fhir.responses import fhir_response
from exchange.api.fhir.rest import resource_uuid, write_response
from exchange.api.guards import requires_scope
from exchange.api.limits import INLINE_CONTENT_LIMIT
from exchange.audit.events import AuditKind, Entity
from exchange.crypto.aead import TamperedError
from exchange.crypto.cloud_keys import KeyServiceUnavailable
from exchange.crypto.keyring import KeyringError
from exchange.crypto.keys import KeyUnwrapError
from exchange.documents.content import ContentError, media_type
from exchange.documents.models import BinaryRow, DocumentRow
from exchange.documents.service import ContentGone, open_content, store_content
from exchange.errors import Corrupted, Subject, Unavailable
from exchange.fhir.capability import ResourceCapability
from exchange.fhir.outcome import FhirError, not_found
from exchange.storage.blobs import BlobMissing
from exchange.storage.s3 import StorageUnavailable
from exchange.versions import instant

log = logging.getLogger("exchange.documents")

BINARY = ResourceCapability(type="Binary", interactions=("create", "read"), versioning="no-version")
READ_SIZE: Final = 1024 * 1024

_SHA256: Final = re.compile(r"^[0-9a-fA-F]{64}$")
_UNAVAILABLE = (StorageUnavailable, KeyServiceUnavailable, KeyringError, OSError)


def binary_resource(row: BinaryRow) -> dict[str, Any]:
    """The Binary's metadata (never its content)."""
    resource: dict[str, Any] = {
        "resourceType": "Binary",
        "id": str(row.id),
        "meta": {"versionId": "1", "lastUpdated": instant(row.created)},
        "contentType": row.content_type,
    }
    if row.document_id is not None:
        resource["securityContext"] = {"reference": f"DocumentReference/{row.document_id}"}
    return resource


def _request_pieces() -> Iterator[bytes]:
    stream = request.stream
    while piece := stream.read(READ_SIZE):
        yield piece


def _unavailable(what: str) -> Unavailable:
    return Unavailable(f"the {what} is unavailable; nothing was stored or disclosed")


@bp.post("/Binary")
@requires_scope("Binary", "c")
def binary_create() -> Response:
    """Upload document content as the raw body, streamed, checked and encrypted."""
    declared = media_type(request.headers.get("Content-Type"))
    expected = request.headers.get("X-Content-SHA256")
    if expected is not None and not _SHA256.fullmatch(expected.strip()):
        raise FhirError(400, "invalid", "X-Content-SHA256 must be 64 hexadecimal characters")
    ctx = services()
    limit = ctx.settings.max_document_bytes
    if request.content_length is not None and request.content_length > limit:
        raise FhirError(413, "too-costly", f"the document is larger than {limit} bytes")
    now = ctx.clock.now()
    try:
        with ctx.database.transaction() as session:
            row = store_content(session, ctx.blob_store(), ctx.key_provider(), _request_pieces(), declared, limit,
                                g.caller.organisation_id, now, expected.strip() if expected else None)
            audit_request(session, entities=(Entity(f"Binary/{row.id}"),), kind=AuditKind.CREATE)
            resource = binary_resource(row)
    except ContentError as error:
        code = {400: "structure", 413: "too-costly", 415: "not-supported", 422: "invalid"}[error.status]
        raise FhirError(error.status, code, str(error)) from None
    except _UNAVAILABLE:
        raise _unavailable("document store or key service") from None
    return write_response(resource, 201)


def _readable(resource_id: str) -> tuple[BinaryRow, str | None]:
    """The Binary if the caller may read it, with its document's title, the read audited
    (committed) before anything is sent: an unattached upload only to its uploader; an
    attached one under its DocumentReference's access decision (`access.md`)."""
    binary_id = resource_uuid("Binary", resource_id)
    title = None
    with services().database.transaction() as session:
        row = session.get(BinaryRow, binary_id)
        if row is None:
            raise not_found("Binary", resource_id)
        if row.document_id is None:
            if row.uploader_id != g.caller.organisation_id:
                raise not_found("Binary", resource_id)
            audit_request(session, entities=(Entity(f"Binary/{row.id}"),))
        else:
            document = session.get(DocumentRow, row.document_id)
            if document is None:
                raise not_found("Binary", resource_id)
            try:
                enforce(session, document, AuditKind.READ)
            except FhirError as refusal:
                if refusal.status == 404:  # never name the document to someone who may not know it
                    raise not_found("Binary", resource_id) from None
                raise
            title = document.resource["content"][0]["attachment"].get("title")
        session.expunge(row)
        return row, title


@bp.get("/Binary/<resource_id>")
@requires_scope("Binary", "r")
def binary_read(resource_id: str) -> Response:
    """The decrypted content, streamed with its digests; FHIR JSON when asked for it."""
    row, title = _readable(resource_id)
    ctx = services()
    # Raw bytes unless the client asks for FHIR JSON specifically (`*/*` means raw).
    wanted = request.accept_mimetypes.best_match([row.content_type, "application/octet-stream", "application/fhir+json"])
    as_fhir = wanted == "application/fhir+json"
    if as_fhir and row.size > INLINE_CONTENT_LIMIT:
        raise FhirError(406, "too-costly", "documents over 10 MiB are served as raw bytes only")
    try:
        stream = open_content(row, ctx.blob_store(), ctx.key_provider())
    except ContentGone:
        raise FhirError(410, "deleted", "the document's content was destroyed under the retention policy") from None
    except (TamperedError, KeyUnwrapError, BlobMissing) as error:
        log.error("document failed its integrity check", extra={"binary": str(row.id), "error": type(error).__name__})
        raise Corrupted("the document could not be served",
                        subject=Subject((Entity(f"Binary/{row.id}"),))) from None
    except _UNAVAILABLE:
        raise _unavailable("document store or key service") from None
    if as_fhir:
        data = b"".join(stream)
        return fhir_response({**binary_resource(row), "data": base64.b64encode(data).decode("ascii")})
    digest = base64.b64encode(bytes.fromhex(row.sha256)).decode("ascii")
    response = Response(stream_with_context(_guarded(stream, row.id)), content_type=row.content_type)
    response.headers["Content-Length"] = str(row.size)
    response.headers["ETag"] = f'"{row.sha256}"'
    response.headers["Repr-Digest"] = f"sha-256=:{digest}:"
    response.headers["Content-Disposition"] = f'attachment; filename="{_safe_filename(title or str(row.id), row.content_type)}"'
    return response


def _guarded(stream: Iterator[bytes], binary_id: uuid.UUID) -> Iterator[bytes]:
    """Pass the content on; a chunk failing authentication mid-stream ends the response
    (the client sees a short body against Content-Length) and is logged, never sent."""
    try:
        yield from stream
    except TamperedError:
        log.error("document failed authentication while streaming", extra={"binary": str(binary_id)})
        raise


_EXTENSIONS: Final = {
    "application/pdf": ".pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
    "text/plain": ".txt",
    "image/png": ".png",
    "image/jpeg": ".jpg",
}


def _safe_filename(title: str, content_type: str) -> str:
    """The document's title as a filename that cannot break the header or the client's file
    system, with the extension of its (checked) content type."""
    cleaned = re.sub(r"[^A-Za-z0-9._ -]", "_", title).strip(" .")[:100] or "document"
    extension = _EXTENSIONS.get(content_type, "")
    return cleaned if cleaned.lower().endswith(extension) else cleaned + extension
