"""Health, readiness, request ids, security headers and operator logs."""

from __future__ import annotations

import json
import logging
import os

import pytest
from flask.testing import FlaskClient

from exchange.app import create_app
from exchange.audit.service import record
from exchange.db import Database
from exchange.settings import Settings
from tests.factories import FrozenClock, audit_entry


def test_healthz(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_ok_when_every_part_answers(client: FlaskClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["checks"] == {
        "database": "ok",
        "document-store": "ok",
        "key-provider": "ok",
        "audit-sealer": "ok",
    }


def test_readyz_names_the_failing_part(client: FlaskClient, settings: Settings) -> None:
    settings.keyring_path.unlink()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["failing"] == ["key-provider"]


def test_readyz_refuses_a_keyring_others_can_read(client: FlaskClient, settings: Settings) -> None:
    os.chmod(settings.keyring_path, 0o644)
    body = client.get("/readyz").get_json()
    assert body["failing"] == ["key-provider"]
    assert "chmod 600" in body["checks"]["key-provider"]


def test_readyz_alarms_on_an_unsealed_backlog(
    client: FlaskClient, db: Database, clock: FrozenClock
) -> None:
    with db.transaction() as session:
        record(session, audit_entry(1), clock)
    assert client.get("/readyz").status_code == 200
    clock.advance(seconds=61)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["failing"] == ["audit-sealer"]


@pytest.mark.parametrize("path", ["/healthz", "/fhir/metadata", "/fhir/nowhere", "/nowhere"])
def test_every_response_has_request_id_and_security_headers(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert len(response.headers["X-Request-ID"]) == 36
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    assert "Strict-Transport-Security" not in response.headers  # plain http here


def test_hsts_behind_tls(client: FlaskClient) -> None:
    response = client.get("/healthz", base_url="https://exchange.example")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


@pytest.mark.parametrize(
    ("sent", "echoed"),
    [
        ("abc.DEF-123_x", True),
        ("x" * 64, True),
        ("x" * 65, False),
        ("bad id", False),
        ("a;b", False),
    ],
)
def test_client_request_id_is_echoed_only_if_safe(
    client: FlaskClient, sent: str, echoed: bool
) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": sent})
    assert (response.headers["X-Request-ID"] == sent) is echoed


def test_log_line_is_json_with_request_id_and_no_query(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    from exchange.logs import JsonFormatter

    with caplog.at_level(logging.INFO, logger="exchange.http"):
        logging.getLogger("exchange.http").addHandler(caplog.handler)
        client.get("/fhir/CodeSystem?url=9434765919", headers={"X-Request-ID": "trace-1"})
        logging.getLogger("exchange.http").removeHandler(caplog.handler)
    lines = [JsonFormatter().format(r) for r in caplog.records if r.name == "exchange.http"]
    entry = json.loads(lines[-1])
    assert entry["request_id"] == "trace-1"
    assert entry["path"] == "/fhir/CodeSystem"
    assert "9434765919" not in lines[-1]


def test_forwarded_for_is_trusted_only_behind_configured_proxies(
    db: Database, clock: FrozenClock, settings: Settings
) -> None:
    from dataclasses import replace

    from flask import request

    from exchange.app import create_app

    seen: list[str | None] = []

    def note_address() -> None:
        seen.append(request.remote_addr)

    for hops in (0, 1):
        app = create_app(replace(settings, proxy_hops=hops), clock=clock, database=db)
        app.before_request(note_address)
        app.test_client().get(
            "/healthz",
            headers={"X-Forwarded-For": "203.0.113.9"},
            environ_base={"REMOTE_ADDR": "127.0.0.1"},
        )
    assert seen == ["127.0.0.1", "203.0.113.9"]


def test_a_database_that_cannot_be_reached_answers_503_and_says_nothing_changed(
    settings: Settings, clock: FrozenClock
) -> None:
    unreachable = Database("postgresql+psycopg://postgres@127.0.0.1:9/exchange?connect_timeout=5")
    try:
        client = create_app(settings, clock=clock, database=unreachable).test_client()
        fhir = client.get("/fhir/DocumentReference", headers={"Authorization": "Bearer abc"})
        assert fhir.status_code == 503
        (issue,) = fhir.get_json()["issue"]
        assert issue["code"] == "transient"
        assert "nothing was changed" in issue["diagnostics"]
        other = client.post("/oauth2/revoke", data={"token": "abc"})
        assert (other.status_code, other.get_json()) == (
            503,
            {"error": "service-unavailable", "status": 503},
        )
    finally:
        unreachable.dispose()
