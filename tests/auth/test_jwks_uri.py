"""Clients registered with a `jwks_uri`: keys fetched over HTTP (a real local server), cached,
refreshed on an unknown kid, with a timeout and a size limit."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from flask.testing import FlaskClient

from exchange.audit.events import Actor
from exchange.auth import jwks as jwks_module
from exchange.db import Database
from exchange.registry.service import apply_bootstrap
from exchange.registry.specs import parse_bootstrap
from tests.conftest import TOKEN_URL
from tests.factories import FrozenClock
from tests.oauth import claims_for, public_jwks, sign, signing_key, token_form


class JwksServer:
    """Serves a JWKS document that tests can change, counting requests."""

    def __init__(self) -> None:
        self.body: bytes = b"{}"
        self.delay = 0.0
        self.status = 200
        self.trickle = 0.0
        self.hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.hits += 1
                time.sleep(outer.delay)
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/json")
                if outer.status in (301, 302):
                    self.send_header("Location", "https://elsewhere.example/jwks.json")
                self.end_headers()
                if not outer.trickle:
                    self.wfile.write(outer.body)
                    return
                for byte in outer.body:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(outer.trickle)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def serve(self, document: dict[str, Any]) -> None:
        self.body = json.dumps(document).encode()


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    server = JwksServer()
    server.serve(public_jwks(signing_key("ES256", "remote-a")))
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture
def remote_client(world: None, db: Database, clock: FrozenClock, jwks_server: JwksServer) -> str:
    entry = {
        "client_id": "icb01-remote",
        "organisation": "ICB01",
        "scopes": ["system/Organization.rs"],
        "jwks_uri": jwks_server.url,
    }
    with db.transaction() as session:
        from exchange.registry.service import known_roles

        apply_bootstrap(
            session,
            parse_bootstrap({"clients": [entry]}, known_roles(session)),
            clock,
            Actor.operator(),
        )
    return "icb01-remote"


def _request(client: FlaskClient, clock: FrozenClock, key_name: str, kid: str | None = None) -> Any:
    key = signing_key("ES256", key_name)
    assertion = sign(claims_for("icb01-remote", TOKEN_URL, clock.now()), key, kid=kid or key.kid)
    return client.post("/oauth2/token", data=token_form(assertion))


def test_keys_come_from_the_jwks_uri_and_are_cached(
    client: FlaskClient, clock: FrozenClock, remote_client: str, jwks_server: JwksServer
) -> None:
    assert _request(client, clock, "remote-a").status_code == 200
    assert _request(client, clock, "remote-a").status_code == 200
    assert jwks_server.hits == 1


def test_rotated_key_is_fetched_on_unknown_kid(
    client: FlaskClient,
    clock: FrozenClock,
    remote_client: str,
    jwks_server: JwksServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(jwks_module, "MIN_REFRESH_SECONDS", 0.0)
    assert _request(client, clock, "remote-a").status_code == 200
    jwks_server.serve(
        public_jwks(signing_key("ES256", "remote-a"), signing_key("ES256", "remote-b"))
    )
    assert _request(client, clock, "remote-b").status_code == 200
    assert jwks_server.hits == 2


def test_unknown_kids_cannot_make_us_hammer_the_client(
    client: FlaskClient, clock: FrozenClock, remote_client: str, jwks_server: JwksServer
) -> None:
    assert _request(client, clock, "remote-a").status_code == 200
    for number in range(5):
        assert _request(client, clock, "remote-a", kid=f"made-up-{number}").status_code == 401
    assert jwks_server.hits == 1


def _operator_reasons(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        str(getattr(r, "reason", ""))
        for r in caplog.records
        if r.getMessage() == "client keys unavailable"
    ]


def _refused_without_detail(response: Any) -> None:
    """The caller learns only invalid_client, nothing of the client's host."""
    assert response.status_code == 401
    assert response.get_json() == {
        "error": "invalid_client",
        "error_description": "The client could not be authenticated.",
    }


def test_oversized_jwks_is_refused(
    client: FlaskClient,
    clock: FrozenClock,
    remote_client: str,
    jwks_server: JwksServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    jwks_server.body = b'{"keys": [' + b'{"kty": "EC"},' * 6000 + b"{}]}"
    _refused_without_detail(_request(client, clock, "remote-a"))
    assert any("64 KiB" in reason for reason in _operator_reasons(caplog))


def test_an_upstream_status_is_told_to_the_operator_not_the_caller(
    client: FlaskClient,
    clock: FrozenClock,
    remote_client: str,
    jwks_server: JwksServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    jwks_server.status = 302
    response = _request(client, clock, "remote-a")
    _refused_without_detail(response)
    assert "302" not in response.get_data(as_text=True)
    assert any("302" in reason for reason in _operator_reasons(caplog))


def test_unreachable_or_slow_jwks_uri_is_refused(
    client: FlaskClient,
    clock: FrozenClock,
    remote_client: str,
    jwks_server: JwksServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(jwks_module, "FETCH_TIMEOUT", 0.5)
    jwks_server.delay = 2.0
    started = time.monotonic()
    _refused_without_detail(_request(client, clock, "remote-a"))
    assert time.monotonic() - started < 2.0


def test_a_trickling_jwks_host_is_cut_off_at_the_overall_deadline(
    client: FlaskClient,
    clock: FrozenClock,
    remote_client: str,
    jwks_server: JwksServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # One byte every 0.2 s never trips a per-read timeout; the deadline covers the whole fetch.
    monkeypatch.setattr(jwks_module, "FETCH_TIMEOUT", 0.5)
    jwks_server.trickle = 0.2
    started = time.monotonic()
    _refused_without_detail(_request(client, clock, "remote-a"))
    assert time.monotonic() - started < 2.0
    assert any("within" in reason for reason in _operator_reasons(caplog))
