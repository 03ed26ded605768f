"""The `/fhir` blueprint: content negotiation and FHIR responses for every resource type."""

from __future__ import annotations

from flask import Blueprint, request

from exchange.api.fhir.bearer import authenticate
from exchange.fhir.outcome import FhirError

bp = Blueprint("fhir", __name__, url_prefix="/fhir")
bp.before_request(authenticate)  # first: 401 and 403 come before any other answer

_JSON_TYPES = ("application/fhir+json", "application/json", "application/json-patch+json")
_ACCEPTABLE = ("application/fhir+json", "application/json")
_FORMATS = ("json", "application/json", "application/fhir+json")


@bp.before_request
def negotiate() -> None:
    """Refuse what cannot be answered or read: FHIR JSON only (`terminology.md`)."""
    fmt = request.args.get("_format")
    if fmt is not None and fmt not in _FORMATS:
        raise FhirError(406, "not-supported", "only JSON (_format=json) is supported")
    accept = request.accept_mimetypes
    if accept and fmt is None and accept.best_match(_ACCEPTABLE) is None:
        binary_read = request.path.startswith("/fhir/Binary/")
        if not binary_read:
            raise FhirError(406, "not-supported", "responses are application/fhir+json only")
    has_body = request.method in ("POST", "PUT", "PATCH")
    streams_bytes = request.path.startswith("/fhir/Binary")
    if has_body and not streams_bytes and request.mimetype not in _JSON_TYPES:
        raise FhirError(415, "not-supported", "request bodies must be application/fhir+json")


from exchange.api.fhir import auditevent as _auditevent  # noqa: E402,F401
from exchange.api.fhir import binary as _binary  # noqa: E402,F401
from exchange.api.fhir import conformance as _conformance  # noqa: E402,F401
from exchange.api.fhir import consent as _consent  # noqa: E402,F401
from exchange.api.fhir import document as _document  # noqa: E402,F401
from exchange.api.fhir import patient as _patient  # noqa: E402,F401
from exchange.api.fhir import registry as _registry  # noqa: E402,F401
from exchange.api.fhir import task as _task  # noqa: E402,F401
from exchange.api.fhir import task_report as _task_report  # noqa: E402,F401
