"""`Binary`: streaming upload of document content and streaming, verified download
(`documents.md`). HTTP only: the body streams into `documents.service.upload_binary`; a
read is decided and audited by `documents.service.read_binary` in a transaction that
commits before the first byte is sent, then the content is opened and streamed."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from typing import Final

from flask import Response, request, stream_with_context

from exchange.api.auditing import request_caller
from exchange.api.context import services
from exchange.api.fhir import bp
from exchange.api.fhir.responses import fhir_response
from exchange.api.fhir.rest import resource_uuid, write_response
from exchange.api.guards import requires_scope
from exchange.audit.service import audited_read
from exchange.documents import service
from exchange.documents.content import INLINE_CONTENT_LIMIT, media_type
from exchange.fhir.capability import ResourceCapability
from exchange.fhir.outcome import FhirError

BINARY = ResourceCapability(type="Binary", interactions=("create", "read"), versioning="no-version")
READ_SIZE: Final = 1024 * 1024

_SHA256: Final = re.compile(r"^[0-9a-fA-F]{64}$")


def _request_pieces() -> Iterator[bytes]:
    stream = request.stream
    while piece := stream.read(READ_SIZE):
        yield piece


@bp.post("/Binary")
@requires_scope("Binary", "c")
def binary_create() -> Response:
    """Upload document content as the raw body, streamed, checked and encrypted."""
    declared = media_type(request.headers.get("Content-Type"))
    expected = request.headers.get("X-Content-SHA256")
    if expected is not None and not _SHA256.fullmatch(expected.strip()):
        raise FhirError(400, "invalid", "X-Content-SHA256 must be 64 hexadecimal characters")
    ctx = services()
    resource = service.upload_binary(
        ctx.database,
        request_caller(),
        ctx,
        _request_pieces(),
        declared,
        request.content_length,
        expected.strip() if expected else None,
        ctx.settings.max_document_bytes,
        ctx.clock.now(),
    )
    return write_response(resource, 201)


@bp.get("/Binary/<resource_id>")
@requires_scope("Binary", "r")
def binary_read(resource_id: str) -> Response:
    """The decrypted content, streamed with its digests; FHIR JSON when asked for it."""
    ctx = services()
    with audited_read(ctx.database) as session:
        disclosure = service.read_binary(
            session, request_caller(), resource_uuid("Binary", resource_id), ctx.clock.now()
        )
    # The read is audited (committed) from here on; only now may content be sent.
    # Raw bytes unless the client asks for FHIR JSON specifically (`*/*` means raw).
    wanted = request.accept_mimetypes.best_match(
        [disclosure.content_type, "application/octet-stream", "application/fhir+json"]
    )
    as_fhir = wanted == "application/fhir+json"
    if as_fhir and disclosure.size > INLINE_CONTENT_LIMIT:
        raise FhirError(406, "too-costly", "documents over 10 MiB are served as raw bytes only")
    stream = disclosure.open(ctx)
    if as_fhir:
        data = b"".join(stream)
        return fhir_response(
            {**disclosure.resource, "data": base64.b64encode(data).decode("ascii")}
        )
    digest = base64.b64encode(bytes.fromhex(disclosure.sha256)).decode("ascii")
    response = Response(stream_with_context(stream), content_type=disclosure.content_type)
    response.headers["Content-Length"] = str(disclosure.size)
    response.headers["ETag"] = f'"{disclosure.sha256}"'
    response.headers["Repr-Digest"] = f"sha-256=:{digest}:"
    filename = _safe_filename(
        disclosure.title or str(disclosure.binary_id), disclosure.content_type
    )
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


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
