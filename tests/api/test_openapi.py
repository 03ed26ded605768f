"""The OpenAPI document covers exactly the app's endpoints, and every endpoint is either
explicitly public or guarded by a scope."""

from __future__ import annotations

import re

from flask import Flask

from exchange.api.guards import GUARD_ATTR, PUBLIC_ATTR
from exchange.api.openapi import openapi_document


def _app_operations(app: Flask) -> set[tuple[str, str]]:
    """The API's operations (the console's HTML pages are a front door of their own,
    guarded by sign-in and roles: tests/console/test_guards.py)."""
    operations = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/console"):
            continue
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        for method in rule.methods or ():
            if method not in ("HEAD", "OPTIONS"):
                operations.add((path, method.lower()))
    return operations


def test_openapi_paths_match_the_url_map(app: Flask) -> None:
    document = openapi_document("http://127.0.0.1:8000")
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    assert documented == _app_operations(app)
    assert document["openapi"].startswith("3.1")


def test_openapi_is_served(app: Flask) -> None:
    body = app.test_client().get("/openapi.json").get_json()
    assert "/fhir/metadata" in body["paths"]


def test_every_endpoint_is_public_or_guarded(app: Flask) -> None:
    unguarded = [
        rule.endpoint
        for rule in app.url_map.iter_rules()
        if not rule.endpoint.startswith("console.")
        and not getattr(app.view_functions[rule.endpoint], PUBLIC_ATTR, False)
        and not getattr(app.view_functions[rule.endpoint], GUARD_ATTR, None)
    ]
    assert unguarded == []


def test_public_endpoints_are_the_allow_list(app: Flask) -> None:
    public = sorted(
        rule.rule
        for rule in app.url_map.iter_rules()
        if getattr(app.view_functions[rule.endpoint], PUBLIC_ATTR, False)
    )
    allowed = {
        "/healthz",
        "/readyz",
        "/openapi.json",
        "/fhir/metadata",
        "/fhir/.well-known/smart-configuration",
        "/oauth2/token",
        "/oauth2/revoke",
        "/oauth2/introspect",
        "/oauth2/jwks",
    }
    conformance = re.compile(
        r"^/fhir/(CodeSystem|ValueSet|StructureDefinition|SearchParameter|OperationDefinition)(/<resource_id>)?$"
    )
    assert [p for p in public if p not in allowed and not conformance.match(p)] == []
