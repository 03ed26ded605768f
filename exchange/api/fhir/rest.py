"""The REST conventions every resource type follows (`api.md`), implemented once:
reading the body, `If-Match` (412), `If-None-Match` (304), `Location` with the versioned
URL, `Prefer: return=minimal|representation|OperationOutcome`, vread and `_history`."""

from __future__ import annotations

import uuid
from typing import Any, Final

from flask import Response, request

from exchange.api.context import services
from exchange.api.fhir.responses import FHIR_JSON, fhir_response
from exchange.api.limits import bounded_body
from exchange.errors import Issue
from exchange.fhir.outcome import FhirError, not_found, operation_outcome
from exchange.fhir.validation import parse_json


def resource_uuid(resource_type: str, resource_id: str) -> uuid.UUID:
    """A resource id from the URL; anything but a UUID is simply not found."""
    try:
        return uuid.UUID(resource_id)
    except ValueError:
        raise not_found(resource_type, None) from None


#: The largest version number a vread can name (the column is a 32-bit integer).
_MAX_VERSION: Final = 2**31 - 1


def version_number(text: str) -> int | None:
    """The version of a `/_history/<n>` URL, or None when it cannot name one (not ASCII
    digits, or beyond what is stored): such a version simply does not exist."""
    if not (text.isascii() and text.isdigit()) or len(text) > 10 or int(text) > _MAX_VERSION:
        return None
    return int(text)


def request_body() -> Any:
    """The request's JSON body (400 if unreadable; 413 if larger than `api.limits` allows,
    raised by the stream itself while reading)."""
    return parse_json(bounded_body())


def check_if_match(current_version: int) -> None:
    """412 if the client's `If-Match` names another version than the current one."""
    header = request.headers.get("If-Match")
    if header is None:
        return
    wanted = header.strip().removeprefix("W/").strip('"')
    if wanted != str(current_version):
        raise FhirError(
            412,
            "conflict",
            f"If-Match names version {wanted}, but the current version is {current_version}",
        )


def not_modified(resource: dict[str, Any]) -> bool:
    """Whether `If-None-Match` names the resource's current version (conditional read)."""
    header = request.headers.get("If-None-Match")
    version = resource.get("meta", {}).get("versionId")
    return (
        header is not None
        and version is not None
        and header.strip().removeprefix("W/").strip('"') == version
    )


def read_response(resource: dict[str, Any], conditional: bool = True) -> Response:
    """200 with the resource, or 304 for a matching `If-None-Match`."""
    if conditional and not_modified(resource):
        response = Response(status=304)
        response.headers["ETag"] = f'W/"{resource["meta"]["versionId"]}"'
        return response
    return fhir_response(resource)


def _location(resource: dict[str, Any]) -> str:
    base = services().settings.public_base_url
    return (
        f"{base}/fhir/{resource['resourceType']}/{resource['id']}"
        f"/_history/{resource['meta']['versionId']}"
    )


def write_response(
    resource: dict[str, Any], status: int, warnings: list[str] | None = None
) -> Response:
    """The answer to a create or update, as `Prefer: return=` asks (representation by
    default), with `Location`, `ETag` and `Last-Modified`."""
    prefer = request.headers.get("Prefer", "").replace(" ", "")
    issues = [Issue("warning", "business-rule", text) for text in warnings or []]
    if "return=minimal" in prefer:
        response = fhir_response(resource, status)
        response.set_data(b"")
        response.headers.pop("Content-Type", None)
    elif "return=OperationOutcome" in prefer:
        outcome = operation_outcome(
            issues or [Issue("information", "informational", f"{resource['resourceType']} stored")]
        )
        response = fhir_response(resource, status)
        response.set_data(fhir_response(outcome).get_data())
        response.headers["Content-Type"] = FHIR_JSON
    else:
        response = fhir_response(resource, status)
    response.headers["Location"] = _location(resource)
    return response


def history_bundle(versions: list[dict[str, Any]]) -> dict[str, Any]:
    """A `history` Bundle of a resource's versions, newest first."""
    base = services().settings.public_base_url
    entries = []
    for position, resource in enumerate(versions):
        method = "POST" if position == len(versions) - 1 else "PUT"
        url = (
            f"{resource['resourceType']}"
            if method == "POST"
            else f"{resource['resourceType']}/{resource['id']}"
        )
        entries.append(
            {
                "fullUrl": f"{base}/fhir/{resource['resourceType']}/{resource['id']}",
                "resource": resource,
                "request": {"method": method, "url": url},
                "response": {
                    "status": "201 Created" if method == "POST" else "200 OK",
                    "lastModified": resource["meta"]["lastUpdated"],
                },
            }
        )
    return {"resourceType": "Bundle", "type": "history", "total": len(entries), "entry": entries}
