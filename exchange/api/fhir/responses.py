"""FHIR JSON responses: resources with their version headers, and search Bundles."""

from __future__ import annotations

from datetime import datetime
from email.utils import format_datetime
from typing import Any, Final

import orjson
from flask import Response

from exchange.api.context import services

FHIR_JSON = "application/fhir+json; charset=utf-8"


_FIRST: Final = ("resourceType", "id", "meta")


def in_fhir_order(resource: dict[str, Any]) -> dict[str, Any]:
    """`resourceType`, `id` and `meta` first, as FHIR JSON writes them (PostgreSQL's JSONB
    keeps keys in its own order), in contained resources and Bundle entries too."""
    ordered: dict[str, Any] = {key: resource[key] for key in _FIRST if key in resource}
    for key, value in resource.items():
        if key in _FIRST:
            continue
        if key == "contained" and isinstance(value, list):
            value = [in_fhir_order(item) if isinstance(item, dict) else item for item in value]
        elif key == "entry" and isinstance(value, list):
            value = [
                {**entry, "resource": in_fhir_order(entry["resource"])}
                if isinstance(entry, dict) and isinstance(entry.get("resource"), dict)
                else entry
                for entry in value
            ]
        ordered[key] = value
    return ordered


def fhir_response(
    resource: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A FHIR JSON response; `ETag` and `Last-Modified` from `meta` when present."""
    # orjson: the same compact UTF-8 as json.dumps(separators=(",", ":"),
    # ensure_ascii=False), at a tenth of the cost (bench/profiles/api-load.md).
    response = Response(
        orjson.dumps(in_fhir_order(resource)),
        status=status,
        content_type=FHIR_JSON,
    )
    meta = resource.get("meta", {})
    if "versionId" in meta:
        response.headers["ETag"] = f'W/"{meta["versionId"]}"'
    if "lastUpdated" in meta:
        last = datetime.fromisoformat(meta["lastUpdated"].replace("Z", "+00:00"))
        response.headers["Last-Modified"] = format_datetime(last, usegmt=True)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def searchset(
    resources: list[dict[str, Any]],
    total: int,
    self_url: str,
    next_url: str | None = None,
    outcome: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A `searchset` Bundle of `resources` (already filtered to what the caller may see)."""
    base = services().settings.public_base_url
    entries: list[dict[str, Any]] = [
        {
            "fullUrl": f"{base}/fhir/{resource['resourceType']}/{resource['id']}",
            "resource": resource,
            "search": {"mode": "match"},
        }
        for resource in resources
    ]
    if outcome is not None:
        entries.append({"resource": outcome, "search": {"mode": "outcome"}})
    links = [{"relation": "self", "url": self_url}]
    if next_url is not None:
        links.append({"relation": "next", "url": next_url})
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "link": links,
        "entry": entries,
    }
