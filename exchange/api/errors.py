"""One error shape per audience: OperationOutcome under `/fhir`, RFC 6749 JSON under
`/oauth2`, a small JSON object elsewhere. Never a class name or a stack trace."""

from __future__ import annotations

import logging

from flask import Flask, Response, g, jsonify, request
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException

from exchange.api.auditing import audit_refusal
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


def fhir_error_response(error: FhirError) -> Response:
    """Render a FhirError as an OperationOutcome response, auditing the refusal if the
    caller is known or the refusal is an access decision (401/403/429)."""
    if not error.audited and (g.get("caller") is not None or error.status in (401, 403, 429)):
        audit_refusal(error.status, error.details_code or error.diagnostics, error.audit_entities, error.audit_patient)
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
    if request.path.startswith("/oauth2"):
        response = jsonify(error="invalid_request", error_description=error.name)
    else:
        response = jsonify(error=error.name.lower().replace(" ", "-"), status=status)
    response.status_code = status
    return response


def _database_down(error: SQLAlchemyError) -> Response:
    # Nothing was half-done: the transaction rolled back. Say so, without details.
    log.error("database error", extra={"error": type(error).__name__})
    if request.path.startswith("/fhir"):
        return fhir_error_response(
            FhirError(503, "transient", "a service this request needs is unavailable; nothing was changed", audited=True)
        )
    response = jsonify(error="service-unavailable", status=503)
    response.status_code = 503
    return response


def _unexpected(error: Exception) -> Response:
    # Operators get the exception type and request id (in the log line); the caller gets a
    # bare 500. Never the message: it may hold personal data.
    log.error("unhandled error", extra={"error": type(error).__name__}, exc_info=False)
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
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(SQLAlchemyError, _database_down)
    app.register_error_handler(Exception, _unexpected)
