"""`/fhir/metadata` and the service's own conformance artefacts (public: they describe
the API and disclose nothing about anyone)."""

from __future__ import annotations

from typing import Any, Final

from flask import Response, jsonify

from exchange.api.context import services
from exchange.api.fhir import bp
from exchange.api.fhir.responses import fhir_response, searchset
from exchange.api.fhir.search import page_urls, parse_search
from exchange.api.guards import public
from exchange.api.oauth import smart_configuration
from exchange.fhir.artefacts import ARTEFACT_TYPES
from exchange.fhir.capability import ResourceCapability, SearchParam
from exchange.fhir.outcome import not_found


@bp.get("/metadata")
@public
def metadata() -> Response:
    """The CapabilityStatement of this server."""
    ctx = services()
    statement = ctx.capabilities.statement(
        base_url=ctx.settings.public_base_url,
        published=ctx.clock.now(),
        security=_security(ctx.settings.public_base_url),
    )
    return fhir_response(statement)


def _security(base_url: str) -> dict[str, Any]:
    """`rest.security`: SMART on FHIR with the OAuth endpoints (SMART App Launch 1.0's
    `oauth-uris` extension, which R4 clients look for)."""
    return {
        "cors": False,
        "service": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                        "code": "SMART-on-FHIR",
                    }
                ],
                "text": (
                    "OAuth 2.0 client credentials with private_key_jwt (SMART Backend Services)"
                ),
            }
        ],
        "extension": [
            {
                "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                "extension": [
                    {"url": "token", "valueUri": f"{base_url}/oauth2/token"},
                    {"url": "revoke", "valueUri": f"{base_url}/oauth2/revoke"},
                    {"url": "introspect", "valueUri": f"{base_url}/oauth2/introspect"},
                ],
            }
        ],
    }


@bp.get("/.well-known/smart-configuration")
@public
def smart_configuration_view() -> Response:
    """SMART configuration: where and how to obtain tokens (`api.md`)."""
    return jsonify(smart_configuration(services().settings.public_base_url))


#: The project's own conformance artefacts, public: read and search by `url`.
CONFORMANCE: Final = tuple(
    ResourceCapability(
        type=resource_type,
        interactions=("read", "search-type"),
        search_params=(SearchParam("url", "uri"),),
        versioning="no-version",
    )
    for resource_type in ARTEFACT_TYPES
)


def _artefact_search(resource_type: str) -> Response:
    search = parse_search({"url"})
    resources = services().artefacts.search(resource_type, search.first("url"))
    self_url, _ = page_urls(search, f"/fhir/{resource_type}", None)
    return fhir_response(
        searchset(resources, len(resources), self_url, None, search.ignored_outcome())
    )


def _artefact_read(resource_type: str, resource_id: str) -> Response:
    resource = services().artefacts.read(resource_type, resource_id)
    if resource is None:
        raise not_found(resource_type, resource_id)
    return fhir_response(resource)


for _type in ARTEFACT_TYPES:
    bp.add_url_rule(
        f"/{_type}",
        endpoint=f"{_type.lower()}_search",
        view_func=public(lambda _type=_type: _artefact_search(_type)),
        methods=["GET"],
    )
    bp.add_url_rule(
        f"/{_type}/<resource_id>",
        endpoint=f"{_type.lower()}_read",
        view_func=public(lambda resource_id, _type=_type: _artefact_read(_type, resource_id)),
        methods=["GET"],
    )
