"""Bearer tokens on `/fhir`: 401 for missing/invalid/expired/revoked tokens, the scope
matrix over every guarded endpoint, per-client rate limits, and the audit of refusals."""

from __future__ import annotations

import json

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from exchange.api.guards import GUARD_ATTR
from exchange.audit.models import AuditRecord
from exchange.db import Database
from tests.conftest import Tokens
from tests.factories import FrozenClock

PERMISSION_LETTERS = "cruds"


def _guarded(app: Flask) -> list[tuple[str, str, str, str]]:
    """(method, url, resource, permission) for every guarded endpoint."""
    endpoints = []
    for rule in app.url_map.iter_rules():
        guard = getattr(app.view_functions[rule.endpoint], GUARD_ATTR, None)
        if guard is None:
            continue
        url = rule.rule.replace("<resource_id>", "00000000-0000-4000-8000-000000000000")
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            endpoints.append((method, url, guard[0], guard[1]))
    return endpoints


def test_scope_matrix(app: Flask, client: FlaskClient, tokens: Tokens) -> None:
    """For every resource type and interaction: without the scope 403 insufficient-scope,
    with it past the scope check (whatever the record says after that)."""
    endpoints = _guarded(app)
    assert {resource for _, _, resource, _ in endpoints} >= {
        "Organization",
        "Contract",
        "AuditEvent",
    }
    for method, url, resource, permission in endpoints:
        others = "".join(p for p in PERMISSION_LETTERS if p != permission)
        other_type = "Patient" if resource != "Patient" else "Task"
        lacking = tokens.headers(
            "la01-everything", f"system/{resource}.{others} system/{other_type}.cruds"
        )
        refused = client.open(url, method=method, headers=lacking)
        assert refused.status_code == 403, (method, url)
        assert (
            refused.get_json()["issue"][0]["details"]["coding"][0]["code"] == "insufficient-scope"
        )
        allowed = client.open(
            url,
            method=method,
            headers=tokens.headers("la01-everything", f"system/{resource}.{permission}"),
        )
        assert allowed.status_code != 403, (method, url, allowed.get_json())
        assert allowed.status_code != 401


@pytest.mark.parametrize(
    "header",
    ["Bearer not-a-token", "Basic dXNlcjpwYXNz", "Bearer", "bearer  ", "Bearer " + "x" * 600],
)
def test_bad_tokens_are_401_with_the_bearer_challenge(
    client: FlaskClient, tokens: Tokens, header: str
) -> None:
    response = client.get("/fhir/Organization", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert response.get_json()["resourceType"] == "OperationOutcome"


def test_missing_token_is_401(client: FlaskClient, tokens: Tokens) -> None:
    assert client.get("/fhir/AuditEvent").status_code == 401


def test_expired_token_is_401(client: FlaskClient, tokens: Tokens, clock: FrozenClock) -> None:
    headers = tokens.headers("la01-case-system")
    assert client.get("/fhir/Organization", headers=headers).status_code == 200
    clock.advance(seconds=301)
    assert client.get("/fhir/Organization", headers=headers).status_code == 401


def test_token_of_a_disabled_client_stops_working(
    client: FlaskClient, tokens: Tokens, db: Database, clock: FrozenClock
) -> None:
    from exchange.audit.events import Actor
    from exchange.registry.service import set_client_enabled

    headers = tokens.headers("la01-case-system")
    with db.transaction() as session:
        set_client_enabled(session, "la01-case-system", False, clock, Actor.operator())
    assert client.get("/fhir/Organization", headers=headers).status_code == 401


def test_refusals_are_audited_with_the_reason(
    client: FlaskClient, tokens: Tokens, db: Database
) -> None:
    client.get("/fhir/Organization", headers={"Authorization": "Bearer forged"})
    client.get("/fhir/AuditEvent", headers=tokens.headers("la01-case-system"))
    with db.transaction() as session:
        rows = session.scalars(
            select(AuditRecord)
            .where(AuditRecord.kind.in_(["rest:search-type"]))
            .order_by(AuditRecord.id)
        ).all()
    payloads = [json.loads(r.payload) for r in rows]
    assert [p["outcome"] for p in payloads][-2:] == ["4", "4"]
    assert "not valid" in payloads[-2]["outcomeDesc"]
    assert payloads[-1]["outcomeDesc"] == "insufficient-scope"
    assert rows[-1].agent_client_id == "la01-case-system"
    assert "forged" not in rows[-2].payload


def test_successful_reads_are_audited_with_token_jti(
    client: FlaskClient, tokens: Tokens, db: Database
) -> None:
    token = tokens.get("la01-case-system")
    search = client.get(
        "/fhir/Organization?identifier=https://fhir.nhs.uk/Id/ods-organization-code|PRV01",
        headers={"Authorization": f"Bearer {token}", "X-Request-ID": "trace-42"},
    )
    assert search.status_code == 200
    assert search.get_json()["total"] == 1
    with db.transaction() as session:
        row = session.scalars(select(AuditRecord).where(AuditRecord.request_id == "trace-42")).one()
    event = json.loads(row.payload)
    assert event["outcome"] == "0"
    assert event["subtype"][0]["code"] == "search-type"
    identifiers = [
        e["what"]["identifier"]["value"]
        for e in event["entity"]
        if "identifier" in e.get("what", {})
    ]
    assert any(i.startswith("urn:ietf:params:oauth:jti:") for i in identifiers)
    assert token not in row.payload


def test_clients_are_rate_limited(
    db: Database, clock: FrozenClock, settings: object, world: None
) -> None:
    from dataclasses import replace

    from exchange.app import create_app
    from exchange.settings import RateLimit

    app = create_app(replace(settings, rate_limit=RateLimit(1, 3)), clock=clock, database=db)  # type: ignore[type-var]
    http = app.test_client()
    headers = Tokens(http, clock).headers("la01-case-system")
    statuses = [http.get("/fhir/Organization", headers=headers).status_code for _ in range(5)]
    assert statuses[:3] == [200, 200, 200]
    assert statuses[3:] == [429, 429]
    limited = http.get("/fhir/Organization", headers=headers)
    assert limited.headers["Retry-After"].isdigit()
    assert limited.get_json()["issue"][0]["code"] == "throttled"


def test_public_endpoints_ignore_a_stale_token(client: FlaskClient) -> None:
    assert (
        client.get(
            "/fhir/metadata", headers={"Authorization": "Bearer expired-long-ago"}
        ).status_code
        == 200
    )
