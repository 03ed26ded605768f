"""The token endpoint with real key pairs for every algorithm, and the negative catalogue
of `quality.md`: each refused with its RFC 6749 error, and audited."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from exchange.audit.models import AuditRecord
from exchange.db import Database
from tests.conftest import TOKEN_URL, Tokens, world_client
from tests.factories import FrozenClock
from tests.oauth import (
    ALGORITHMS,
    claims_for,
    hmac_with_public_key,
    sign,
    signing_key,
    token_form,
    unsigned,
)


def _token_events(db: Database) -> list[dict[str, Any]]:
    with db.transaction() as session:
        payloads = session.scalars(
            select(AuditRecord.payload)
            .where(AuditRecord.kind == "auth:token")
            .order_by(AuditRecord.id)
        ).all()
    return [json.loads(p) for p in payloads]


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_every_algorithm_gets_a_token(
    tokens: Tokens, client: FlaskClient, clock: FrozenClock, db: Database, alg: str
) -> None:
    assertion = sign(claims_for("la01-case-system", TOKEN_URL, clock.now()), signing_key(alg))
    response = client.post("/oauth2/token", data=token_form(assertion, "system/Patient.rs"))
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["token_type"] == "Bearer"
    assert 0 < body["expires_in"] <= 300
    assert body["scope"] == "system/Patient.rs"
    assert len(body["access_token"]) >= 40
    assert response.headers["Cache-Control"] == "no-store"
    event = _token_events(db)[-1]
    assert event["outcome"] == "0"
    assert event["agent"][0]["who"]["identifier"]["value"] == "la01-case-system"
    assert body["access_token"] not in json.dumps(event)


Mutation = Callable[[FrozenClock], str]


def _claims(clock: FrozenClock, **overrides: Any) -> dict[str, Any]:
    return claims_for("la01-case-system", TOKEN_URL, clock.now(), **overrides)


ES256 = signing_key("ES256")
NEGATIVE: dict[str, tuple[Callable[[FrozenClock], str], str]] = {
    "alg none": (lambda c: unsigned(_claims(c), ES256.kid), "invalid_client"),
    "HS256 keyed with the public key": (
        lambda c: hmac_with_public_key(_claims(c), signing_key("RS256")),
        "invalid_client",
    ),
    "wrong aud": (
        lambda c: sign(_claims(c, aud="https://elsewhere.example/oauth2/token"), ES256),
        "invalid_client",
    ),
    "aud of the base URL only": (
        lambda c: sign(_claims(c, aud="http://127.0.0.1:8000"), ES256),
        "invalid_client",
    ),
    "expired": (
        lambda c: sign(_claims(c, exp=int(c.now().timestamp()) - 120), ES256),
        "invalid_client",
    ),
    "exp too far ahead": (lambda c: sign(_claims(c, lifetime=600), ES256), "invalid_client"),
    "no exp": (lambda c: sign(_claims(c, exp=None), ES256), "invalid_client"),
    "nbf in the future": (
        lambda c: sign(_claims(c, nbf=int(c.now().timestamp()) + 120), ES256),
        "invalid_client",
    ),
    "iat in the future": (
        lambda c: sign(_claims(c, iat=int(c.now().timestamp()) + 120), ES256),
        "invalid_client",
    ),
    "unknown kid": (lambda c: sign(_claims(c), ES256, kid="nobody-knows"), "invalid_client"),
    "key not in the JWKS": (
        lambda c: sign(_claims(c), signing_key("ES256", "stranger"), kid=ES256.kid),
        "invalid_client",
    ),
    "iss differs from sub": (lambda c: sign(_claims(c, iss="prv01-epr"), ES256), "invalid_client"),
    "unknown client": (
        lambda c: sign(claims_for("nobody", TOKEN_URL, c.now()), ES256),
        "invalid_client",
    ),
    "disabled client": (
        lambda c: sign(
            claims_for("la01-retired", TOKEN_URL, c.now()), signing_key("ES256", "la01-retired")
        ),
        "invalid_client",
    ),
    "no jti": (lambda c: sign(_claims(c, jti=None), ES256), "invalid_client"),
    "typ not JWT": (lambda c: sign(_claims(c), ES256, typ="at+jwt"), "invalid_client"),
    "oversized JWT": (lambda c: sign(_claims(c, padding="x" * 9000), ES256), "invalid_client"),
    "garbage": (lambda c: "not.a.jwt", "invalid_client"),
    "another deployment's key": (
        lambda c: sign(
            claims_for("la01-case-system", TOKEN_URL, c.now()),
            signing_key("ES256", "other-deployment"),
            kid=ES256.kid,
        ),
        "invalid_client",
    ),
}


@pytest.mark.parametrize("case", sorted(NEGATIVE))
def test_negative_catalogue_is_refused_and_audited(
    tokens: Tokens, client: FlaskClient, clock: FrozenClock, db: Database, case: str
) -> None:
    make, error = NEGATIVE[case]
    before = len(_token_events(db))
    response = client.post("/oauth2/token", data=token_form(make(clock)))
    assert response.status_code == 401
    assert response.get_json()["error"] == error
    assert "access_token" not in response.get_json()
    events = _token_events(db)
    assert len(events) == before + 1
    assert events[-1]["outcome"] == "4"
    assert events[-1]["outcomeDesc"].startswith(f"{error}: ")


def test_replayed_jti_is_refused(
    tokens: Tokens, client: FlaskClient, clock: FrozenClock, db: Database
) -> None:
    assertion = sign(_claims(clock), ES256)
    assert client.post("/oauth2/token", data=token_form(assertion)).status_code == 200
    replay = client.post("/oauth2/token", data=token_form(assertion))
    assert replay.status_code == 401
    assert "replay" in replay.get_json()["error_description"]
    assert "replay" in _token_events(db)[-1]["outcomeDesc"]


def test_a_jti_may_be_reused_by_another_client(
    tokens: Tokens, client: FlaskClient, clock: FrozenClock
) -> None:
    shared = "shared-jti-1"
    first = sign(_claims(clock, jti=shared), ES256)
    other = world_client("prv01-epr")
    second = sign(claims_for("prv01-epr", TOKEN_URL, clock.now(), jti=shared), other.key)
    assert client.post("/oauth2/token", data=token_form(first)).status_code == 200
    assert client.post("/oauth2/token", data=token_form(second)).status_code == 200


def test_exp_exactly_five_minutes_ahead_is_accepted(tokens: Tokens) -> None:
    assert tokens.request("la01-case-system", lifetime=300).status_code == 200  # type: ignore[attr-defined]


def test_skew_within_sixty_seconds_is_tolerated(tokens: Tokens, clock: FrozenClock) -> None:
    now = int(clock.now().timestamp())
    assert tokens.request("la01-case-system", nbf=now + 50, iat=now + 50).status_code == 200  # type: ignore[attr-defined]
    assert tokens.request("la01-case-system", exp=now - 30).status_code == 200  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("requested", "granted"),
    [
        (
            None,
            "system/Binary.cr system/Consent.cruds system/Contract.rs system/DocumentReference.crs "
            "system/Organization.rs system/Patient.cruds system/Task.cruds",
        ),
        ("system/Patient.rs", "system/Patient.rs"),
        ("system/Patient.read system/Task.write", "system/Patient.rs system/Task.cud"),
        (
            "system/*.read",
            "system/Binary.r system/Consent.rs system/Contract.rs system/DocumentReference.rs "
            "system/Organization.rs system/Patient.rs system/Task.rs",
        ),
        ("system/Patient.rs system/AuditEvent.rs launch openid", "system/Patient.rs"),
        ("system/DocumentReference.cruds", "system/DocumentReference.crs"),
    ],
)
def test_granted_scope_is_the_intersection(
    tokens: Tokens, requested: str | None, granted: str
) -> None:
    response = tokens.request("la01-case-system", requested)
    assert response.status_code == 200  # type: ignore[attr-defined]
    assert response.get_json()["scope"] == granted  # type: ignore[attr-defined]


def test_empty_intersection_is_invalid_scope(tokens: Tokens, db: Database) -> None:
    response = tokens.request("la01-case-system", "system/AuditEvent.rs")
    assert response.status_code == 400  # type: ignore[attr-defined]
    assert response.get_json()["error"] == "invalid_scope"  # type: ignore[attr-defined]
    assert _token_events(db)[-1]["outcomeDesc"].startswith("invalid_scope")


def test_other_grant_types_are_unsupported(
    tokens: Tokens, client: FlaskClient, clock: FrozenClock
) -> None:
    response = client.post(
        "/oauth2/token", data=token_form(sign(_claims(clock), ES256), grant_type="password")
    )
    assert response.status_code == 400
    assert response.get_json()["error"] == "unsupported_grant_type"


def test_missing_assertion_is_invalid_client(tokens: Tokens, client: FlaskClient) -> None:
    response = client.post("/oauth2/token", data={"grant_type": "client_credentials"})
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_client"


def test_identical_failures_within_a_minute_are_aggregated(
    tokens: Tokens, client: FlaskClient, clock: FrozenClock, db: Database
) -> None:
    from exchange.auth.failures import flush_failure_windows

    before = len(_token_events(db))
    for _ in range(5):
        client.post(
            "/oauth2/token",
            data=token_form(sign(_claims(clock, aud="https://wrong.example"), ES256)),
        )
    events = _token_events(db)
    assert len(events) == before + 1  # the first at once; four counted
    clock.advance(seconds=61)
    with db.transaction() as session:
        assert flush_failure_windows(session, clock) == 1
    summary = _token_events(db)[-1]
    details = {d["type"]: d["valueString"] for d in summary["entity"][0]["detail"]}
    assert details["count"] == "4"
    assert details["claimed-client"] == "la01-case-system"


def test_token_requests_are_rate_limited_per_address(
    db: Database, clock: FrozenClock, settings: Any
) -> None:
    from dataclasses import replace

    from exchange.app import create_app
    from exchange.settings import RateLimit

    app = create_app(replace(settings, token_rate_limit=RateLimit(1, 2)), clock=clock, database=db)
    http = app.test_client()
    statuses = [
        http.post("/oauth2/token", data={"grant_type": "client_credentials"}).status_code
        for _ in range(4)
    ]
    assert statuses[:2] == [401, 401]
    assert statuses[2:] == [429, 429]
    limited = http.post("/oauth2/token", data={})
    assert int(limited.headers["Retry-After"]) >= 1
