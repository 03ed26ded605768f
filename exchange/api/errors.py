"""One error shape per audience: OperationOutcome under `/fhir`, RFC 6749 JSON under
`/oauth2`, a small JSON object elsewhere. Never a class name or a stack trace.

Domain errors (`exchange.errors`) carry a stable code; `DOMAIN_ERRORS` is the one table
that says what each code is in HTTP and FHIR. Every refusal is audited through
`audit.record_refusal` once the request's own transaction has ended.
"""

from __future__ import annotations

import logging
from typing import Final

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from exchange.api.auditing import audit_refusal
from exchange.api.console.pages import error_page as console_error_page
from exchange.db import DatabaseError
from exchange.errors import AccessDenied, DomainError, Issue, Subject
from exchange.fhir.outcome import FhirError

log = logging.getLogger("exchange.errors")

_FHIR_CODES = {
    400: "structure",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    409: "conflict",
    410: "deleted",
    412: "conflict",
    413: "too-costly",
    415: "not-supported",
    422: "invalid",
    429: "throttled",
}


#: Every domain error code (`exchange.errors`): its HTTP status and FHIR issue type.
DOMAIN_ERRORS: Final[dict[str, tuple[int, str]]] = {
    "not-found": (404, "not-found"),
    "structure": (400, "structure"),
    "required": (400, "required"),
    "invalid-parameter": (400, "value"),
    "empty-content": (400, "structure"),
    "forbidden": (403, "forbidden"),
    "access-denied": (403, "forbidden"),
    "conflict": (409, "conflict"),
    "duplicate": (409, "duplicate"),
    "gone": (410, "deleted"),
    "version-mismatch": (412, "conflict"),
    "too-large": (413, "too-costly"),
    "unsupported-content": (415, "not-supported"),
    "invalid": (422, "invalid"),
    "digest-mismatch": (422, "invalid"),
    "corrupted": (500, "exception"),
    "unavailable": (503, "transient"),
}


def as_fhir_error(error: DomainError) -> FhirError:
    """The HTTP status and OperationOutcome of a domain error."""
    status, issue_type = DOMAIN_ERRORS[error.code]
    details = error.denial.value if isinstance(error, AccessDenied) else None
    issues = list(error.issues) or [Issue("error", issue_type, error.message, (), details)]
    return FhirError(status, issue_type, error.message, details_code=details, issues=issues)


def _domain_error(error: DomainError) -> Response:
    fhir_error = as_fhir_error(error)
    audit_refusal(fhir_error.status, error.reason, error.subject)
    return _outcome_response(fhir_error)


def fhir_error_response(error: FhirError) -> Response:
    """Render a FhirError as an OperationOutcome response, auditing the refusal if the
    caller is known or the refusal is an access decision (401/403/429)."""
    if g.get("caller") is not None or error.status in (401, 403, 429):
        audit_refusal(error.status, error.details_code or error.diagnostics, Subject())
    return _outcome_response(error)


def _outcome_response(error: FhirError) -> Response:
    response = jsonify(error.outcome())
    response.status_code = error.status
    response.mimetype = "application/fhir+json"
    for name, value in error.headers.items():
        response.headers[name] = value
    return response


def _http_error(error: HTTPException) -> Response:
    status = error.code or 500
    if request.path.startswith("/fhir"):
        description = {
            404: "there is no such endpoint or resource",
            405: f"{request.method} is not supported here",
            413: "the request body is larger than this service accepts",
        }.get(status, error.name)
        response = fhir_error_response(
            FhirError(status, _FHIR_CODES.get(status, "exception"), description)
        )
        if status == 405 and error.get_response().headers.get("Allow"):
            response.headers["Allow"] = error.get_response().headers["Allow"]
        return response
    if request.path.startswith("/console"):
        # Outside a console view (an unknown console URL): the console's own page.
        return console_error_page(status)
    if request.path.startswith("/oauth2"):
        response = jsonify(error="invalid_request", error_description=error.name)
    else:
        response = jsonify(error=error.name.lower().replace(" ", "-"), status=status)
    response.status_code = status
    return response


def _database_down(error: DatabaseError) -> Response:
    # Nothing was half-done: the transaction rolled back. Say so, without details.
    log.error("database error", extra={"error": type(error).__name__})
    if request.path.startswith("/console"):
        return console_error_page(503, "Nothing was changed. Try again in a few minutes.")
    if request.path.startswith("/fhir"):
        # Not audited: the audit trail is in the database that just failed.
        return _outcome_response(
            FhirError(
                503, "transient", "a service this request needs is unavailable; nothing was changed"
            )
        )
    response = jsonify(error="service-unavailable", status=503)
    response.status_code = 503
    return response


def _unexpected(error: Exception) -> Response:
    # Operators get the exception type and request id (in the log line); the caller gets a
    # bare 500. Never the message: it may hold personal data.
    log.error("unhandled error", extra={"error": type(error).__name__}, exc_info=False)
    if request.path.startswith("/console"):
        return console_error_page(500)
    if request.path.startswith("/fhir"):
        return fhir_error_response(
            FhirError(500, "exception", "the server could not complete the request")
        )
    response = jsonify(error="server-error", status=500)
    response.status_code = 500
    return response


def init_app(app: Flask) -> None:
    """Install the error handlers on `app`."""
    app.register_error_handler(FhirError, fhir_error_response)
    app.register_error_handler(DomainError, _domain_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(DatabaseError, _database_down)
    app.register_error_handler(Exception, _unexpected)
