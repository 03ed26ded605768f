"""How many bytes a request body may have, set before anything reads it.

Werkzeug enforces `request.max_content_length` on the stream itself, so a chunked body
(no `Content-Length`) is cut off at the limit with 413 instead of being buffered whole,
before authentication as much as after (`api.md`: 413).
"""

from __future__ import annotations

from typing import Final

from flask import Flask, request
from werkzeug.exceptions import RequestEntityTooLarge

from exchange.api.context import services
from exchange.documents.content import INLINE_CONTENT_LIMIT

#: FHIR JSON resources.
JSON_BODY_LIMIT: Final = 1024 * 1024
#: OAuth forms: an assertion is at most 8 KiB.
OAUTH_BODY_LIMIT: Final = 64 * 1024
#: A DocumentReference with 10 MiB inline: base64 (4 bytes per 3) plus the resource around it.
INLINE_DOCUMENT_BODY_LIMIT: Final = INLINE_CONTENT_LIMIT * 4 // 3 + JSON_BODY_LIMIT


def body_limit(method: str, path: str, max_document_bytes: int) -> int:
    """The most bytes a request with this method and path may send."""
    if method == "POST" and path == "/fhir/Binary":
        return max_document_bytes
    if method in ("POST", "PUT") and path.startswith("/fhir/DocumentReference"):
        return INLINE_DOCUMENT_BODY_LIMIT
    if path.startswith("/oauth2/"):
        return OAUTH_BODY_LIMIT
    return JSON_BODY_LIMIT


def _limit_body() -> None:
    # One byte over what is allowed: a stream that reaches the limit held too much (werkzeug
    # stops reading there without saying whether more was coming).
    request.max_content_length = (
        body_limit(request.method, request.path, services().settings.max_document_bytes) + 1
    )


def bounded_body() -> bytes:
    """The whole request body, read through the limit (413 when it is over); kept, so form
    parsing reads the same bytes."""
    data = request.get_data(cache=True)
    limit = request.max_content_length
    if limit is not None and len(data) >= limit:
        raise RequestEntityTooLarge()
    return data


def init_app(app: Flask) -> None:
    """Limit every request body of `app`."""
    app.before_request(_limit_body)
