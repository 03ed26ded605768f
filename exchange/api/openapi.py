"""`GET /openapi.json`: the OpenAPI 3.1 description of every endpoint.

Operations are declared here, beside nothing else, and a test compares them with the app's
URL map in both directions, so an endpoint cannot be added or removed without this
document following.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from flask import Blueprint, Response, jsonify

from exchange import __version__
from exchange.api.context import services
from exchange.api.guards import public
from exchange.fhir.artefacts import ARTEFACT_TYPES

bp = Blueprint("openapi", __name__)

_FHIR_JSON: Final = "application/fhir+json"
_OUTCOME: Final = {"$ref": "#/components/schemas/OperationOutcome"}
_RESOURCE: Final = {"$ref": "#/components/schemas/Resource"}


@dataclass(frozen=True)
class Operation:
    """One documented operation."""

    path: str
    method: str
    summary: str
    tag: str
    secured: bool = True
    parameters: tuple[str, ...] = ()
    fhir: bool = True


def _fhir_operations() -> list[Operation]:
    operations = [
        Operation("/fhir/metadata", "get", "CapabilityStatement", "FHIR conformance", secured=False)
    ]
    for resource_type in ARTEFACT_TYPES:
        operations += [
            Operation(
                f"/fhir/{resource_type}",
                "get",
                f"Search {resource_type} by url",
                "FHIR conformance",
                False,
                ("url",),
            ),
            Operation(
                f"/fhir/{resource_type}/{{resource_id}}",
                "get",
                f"Read a {resource_type}",
                "FHIR conformance",
                False,
            ),
        ]
    operations += [
        Operation(
            "/fhir/.well-known/smart-configuration",
            "get",
            "SMART configuration",
            "OAuth",
            False,
            fhir=False,
        ),
        Operation(
            "/fhir/AuditEvent",
            "get",
            "Search the organisation's audit events",
            "Audit",
            parameters=(
                "date",
                "patient",
                "patient.identifier",
                "entity",
                "agent",
                "type",
                "subtype",
                "outcome",
                "action",
                "_lastUpdated",
                "purpose",
                "_sort",
                "_count",
            ),
        ),
        Operation("/fhir/AuditEvent/{resource_id}", "get", "Read an audit event", "Audit"),
        Operation(
            "/fhir/Patient",
            "post",
            "Register a child or young person (conditional create: If-None-Exist)",
            "Patients",
        ),
        Operation(
            "/fhir/Patient",
            "get",
            "Find a patient by NHS number",
            "Patients",
            parameters=("identifier",),
        ),
        Operation("/fhir/Patient/{resource_id}", "get", "Read a patient", "Patients"),
        Operation("/fhir/Patient/{resource_id}", "put", "Update a patient", "Patients"),
        Operation(
            "/fhir/Patient/{resource_id}/_history", "get", "A patient's versions", "Patients"
        ),
        Operation(
            "/fhir/Patient/{resource_id}/_history/{version}",
            "get",
            "One version of a patient",
            "Patients",
        ),
        Operation("/fhir/Consent", "post", "Record a consent decision", "Consent"),
        Operation(
            "/fhir/Consent",
            "get",
            "Search consents",
            "Consent",
            parameters=(
                "patient",
                "patient.identifier",
                "status",
                "category",
                "date",
                "_tag",
                "_sort",
                "_count",
            ),
        ),
        Operation(
            "/fhir/Consent/$evaluate",
            "get",
            "The consent decision for a recipient and purpose",
            "Consent",
            parameters=("patient.identifier", "recipient", "purpose", "at"),
        ),
        Operation("/fhir/Consent/{resource_id}", "get", "Read a consent", "Consent"),
        Operation(
            "/fhir/Consent/{resource_id}",
            "put",
            "Change a consent's status (withdrawal)",
            "Consent",
        ),
        Operation("/fhir/Consent/{resource_id}/_history", "get", "A consent's versions", "Consent"),
        Operation(
            "/fhir/Consent/{resource_id}/_history/{version}",
            "get",
            "One version of a consent",
            "Consent",
        ),
        Operation("/fhir/Task", "post", "Request health advice (LA)", "Advice requests"),
        Operation(
            "/fhir/Task",
            "get",
            "Search advice requests",
            "Advice requests",
            parameters=(
                "patient",
                "patient.identifier",
                "owner",
                "requester",
                "status",
                "code",
                "business-status",
                "authored-on",
                "due",
                "_lastUpdated",
                "_sort",
                "_count",
            ),
        ),
        Operation(
            "/fhir/Task/$six-week-report",
            "get",
            "The monthly six-week report (MeasureReport)",
            "Advice requests",
            parameters=("period", "owner", "requester"),
        ),
        Operation("/fhir/Task/{resource_id}", "get", "Read an advice request", "Advice requests"),
        Operation(
            "/fhir/Task/{resource_id}",
            "put",
            "Change an advice request (transition)",
            "Advice requests",
        ),
        Operation(
            "/fhir/Task/{resource_id}",
            "patch",
            "Change an advice request with JSON Patch",
            "Advice requests",
        ),
        Operation(
            "/fhir/Task/{resource_id}/_history",
            "get",
            "An advice request's versions",
            "Advice requests",
        ),
        Operation(
            "/fhir/Task/{resource_id}/_history/{version}",
            "get",
            "One version of an advice request",
            "Advice requests",
        ),
        Operation(
            "/fhir/DocumentReference", "post", "Record a health-advice document", "Documents"
        ),
        Operation(
            "/fhir/DocumentReference",
            "get",
            "Search documents (under the access decision)",
            "Documents",
            parameters=(
                "patient",
                "patient.identifier",
                "subject",
                "type",
                "category",
                "custodian",
                "author",
                "date",
                "status",
                "related",
                "_lastUpdated",
                "_sort",
                "_count",
            ),
        ),
        Operation(
            "/fhir/DocumentReference/{resource_id}",
            "get",
            "Read a document's metadata",
            "Documents",
        ),
        Operation(
            "/fhir/DocumentReference/{resource_id}",
            "put",
            "Change a document's status (custodian)",
            "Documents",
        ),
        Operation(
            "/fhir/DocumentReference/{resource_id}/_history",
            "get",
            "A document's versions",
            "Documents",
        ),
        Operation(
            "/fhir/DocumentReference/{resource_id}/_history/{version}",
            "get",
            "One version of a document",
            "Documents",
        ),
        Operation(
            "/fhir/Binary", "post", "Upload document content (raw body, streamed)", "Documents"
        ),
        Operation(
            "/fhir/Binary/{resource_id}", "get", "Download document content (streamed)", "Documents"
        ),
        Operation(
            "/fhir/Organization",
            "get",
            "Search organisations",
            "Registry",
            parameters=("identifier", "type"),
        ),
        Operation("/fhir/Organization/{resource_id}", "get", "Read an organisation", "Registry"),
        Operation(
            "/fhir/Contract",
            "get",
            "Search data-sharing agreements",
            "Registry",
            parameters=("status", "signer"),
        ),
        Operation(
            "/fhir/Contract/{resource_id}", "get", "Read a data-sharing agreement", "Registry"
        ),
    ]
    return operations


OPERATIONS: Final[list[Operation]] = [
    Operation("/healthz", "get", "Liveness", "Service", secured=False, fhir=False),
    Operation(
        "/readyz",
        "get",
        "Readiness of the database, document store and key provider",
        "Service",
        secured=False,
        fhir=False,
    ),
    Operation("/openapi.json", "get", "This document", "Service", secured=False, fhir=False),
    Operation(
        "/oauth2/token",
        "post",
        "Client credentials with a private_key_jwt assertion",
        "OAuth",
        False,
        fhir=False,
    ),
    Operation(
        "/oauth2/revoke", "post", "Revoke an access token (RFC 7009)", "OAuth", False, fhir=False
    ),
    Operation(
        "/oauth2/introspect",
        "post",
        "Introspect an access token (RFC 7662)",
        "OAuth",
        False,
        fhir=False,
    ),
    Operation(
        "/oauth2/jwks",
        "get",
        "The service's token-signing keys (none: tokens are opaque)",
        "OAuth",
        False,
        fhir=False,
    ),
    *_fhir_operations(),
]


def _operation(operation: Operation) -> dict[str, Any]:
    content_type = _FHIR_JSON if operation.fhir else "application/json"
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
        for name in operation.parameters
    ]
    for name in ("resource_id", "version"):
        if f"{{{name}}}" in operation.path:
            parameters.append(
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            )
    responses: dict[str, Any] = {
        "200": {
            "description": "OK",
            "content": {
                content_type: {"schema": _RESOURCE if operation.fhir else {"type": "object"}}
            },
        },
    }
    if operation.fhir:
        for status, text in (
            ("400", "Bad request"),
            ("404", "Not found"),
            ("406", "Not acceptable"),
        ):
            responses[status] = {"description": text, "content": {_FHIR_JSON: {"schema": _OUTCOME}}}
    if operation.secured:
        responses["401"] = {
            "description": "Missing or invalid token",
            "content": {_FHIR_JSON: {"schema": _OUTCOME}},
        }
        responses["403"] = {
            "description": "Insufficient scope",
            "content": {_FHIR_JSON: {"schema": _OUTCOME}},
        }
    if operation.path == "/readyz":
        responses["503"] = {
            "description": "A dependency is down",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    document: dict[str, Any] = {
        "summary": operation.summary,
        "tags": [operation.tag],
        "operationId": (
            f"{operation.method}_"
            + operation.path.strip("/")
            .replace("/", "_")
            .replace("{", "")
            .replace("}", "")
            .replace(".", "_")
        ),
        "parameters": parameters,
        "responses": responses,
    }
    body = _request_body(operation)
    if body is not None:
        document["requestBody"] = body
    document["security"] = [{"bearer": []}] if operation.secured else []
    return document


def _request_body(operation: Operation) -> dict[str, Any] | None:
    """What a POST, PUT or PATCH takes: a FHIR resource, a JSON Patch, raw document bytes,
    or an OAuth form."""
    if operation.method not in ("post", "put", "patch"):
        return None
    if operation.path.startswith("/oauth2/"):
        form = {
            "type": "object",
            "properties": {
                name: {"type": "string"}
                for name in (
                    "grant_type",
                    "client_assertion_type",
                    "client_assertion",
                    "scope",
                    "token",
                    "token_type_hint",
                )
            },
        }
        return {
            "required": True,
            "content": {"application/x-www-form-urlencoded": {"schema": form}},
        }
    if operation.path == "/fhir/Binary":
        raw = {"type": "string", "format": "binary"}
        return {
            "required": True,
            "content": {
                media: {"schema": raw}
                for media in (
                    "application/pdf",
                    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                    "text/plain",
                    "image/png",
                    "image/jpeg",
                )
            },
        }
    if operation.method == "patch":
        patch = {"type": "array", "items": {"type": "object", "required": ["op", "path"]}}
        return {"required": True, "content": {"application/json-patch+json": {"schema": patch}}}
    return {"required": True, "content": {_FHIR_JSON: {"schema": _RESOURCE}}}


def openapi_document(base_url: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the service."""
    paths: dict[str, dict[str, Any]] = {}
    for operation in OPERATIONS:
        paths.setdefault(operation.path, {})[operation.method] = _operation(operation)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "SEND health-advice exchange",
            "version": __version__,
            "description": (
                "FHIR R4 API for consent, advice requests, health-advice documents and their "
                "audit trail."
            ),
        },
        "servers": [{"url": base_url}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "oauth2",
                    "description": (
                        "Client credentials with private_key_jwt (SMART Backend Services)"
                    ),
                    "flows": {
                        "clientCredentials": {"tokenUrl": f"{base_url}/oauth2/token", "scopes": {}}
                    },
                }
            },
            "schemas": {
                "Resource": {
                    "type": "object",
                    "required": ["resourceType"],
                    "properties": {"resourceType": {"type": "string"}},
                },
                "OperationOutcome": {
                    "type": "object",
                    "required": ["resourceType", "issue"],
                    "properties": {
                        "resourceType": {"const": "OperationOutcome"},
                        "issue": {"type": "array", "items": {"type": "object"}},
                    },
                },
            },
        },
    }


@bp.get("/openapi.json")
@public
def openapi() -> Response:
    """The OpenAPI document."""
    return jsonify(openapi_document(services().settings.public_base_url))
