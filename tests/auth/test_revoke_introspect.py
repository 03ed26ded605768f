"""RFC 7009 revocation and RFC 7662 introspection, authenticated with private_key_jwt."""

from __future__ import annotations

from flask.testing import FlaskClient

from tests.conftest import TOKEN_URL, Tokens, world_client
from tests.factories import FrozenClock
from tests.oauth import ASSERTION_TYPE, claims_for, sign


def _auth(client_id: str, clock: FrozenClock, audience: str = TOKEN_URL) -> dict[str, str]:
    key = world_client(client_id).key
    return {
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": sign(claims_for(client_id, audience, clock.now()), key),
    }


def test_revoked_token_is_refused_at_once(
    client: FlaskClient, tokens: Tokens, clock: FrozenClock
) -> None:
    token = tokens.get("la01-case-system")
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/fhir/Organization", headers=headers).status_code == 200
    response = client.post(
        "/oauth2/revoke", data={"token": token, **_auth("la01-case-system", clock)}
    )
    assert response.status_code == 200
    assert response.get_data() == b""
    assert client.get("/fhir/Organization", headers=headers).status_code == 401


def test_revoke_accepts_the_endpoint_url_as_audience(
    client: FlaskClient, tokens: Tokens, clock: FrozenClock
) -> None:
    token = tokens.get("la01-case-system")
    auth = _auth("la01-case-system", clock, "http://127.0.0.1:8000/oauth2/revoke")
    assert client.post("/oauth2/revoke", data={"token": token, **auth}).status_code == 200
    assert (
        client.get("/fhir/Organization", headers={"Authorization": f"Bearer {token}"}).status_code
        == 401
    )


def test_revoking_an_unknown_or_foreign_token_is_200_and_changes_nothing(
    client: FlaskClient, tokens: Tokens, clock: FrozenClock
) -> None:
    assert (
        client.post(
            "/oauth2/revoke", data={"token": "never-issued", **_auth("prv01-epr", clock)}
        ).status_code
        == 200
    )
    token = tokens.get("la01-case-system")
    assert (
        client.post(
            "/oauth2/revoke", data={"token": token, **_auth("prv01-epr", clock)}
        ).status_code
        == 200
    )
    assert (
        client.get("/fhir/Organization", headers={"Authorization": f"Bearer {token}"}).status_code
        == 200
    )


def test_revoke_needs_client_authentication(client: FlaskClient, tokens: Tokens) -> None:
    token = tokens.get("la01-case-system")
    response = client.post("/oauth2/revoke", data={"token": token})
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_client"


def test_introspection_of_own_token(
    client: FlaskClient, tokens: Tokens, clock: FrozenClock
) -> None:
    token = tokens.get("la01-case-system", "system/Patient.rs")
    body = client.post(
        "/oauth2/introspect", data={"token": token, **_auth("la01-case-system", clock)}
    ).get_json()
    assert body["active"] is True
    assert body["client_id"] == "la01-case-system"
    assert body["scope"] == "system/Patient.rs"
    assert body["exp"] - body["iat"] == 300
    assert body["organization"] == "LA01"


def test_introspection_of_another_clients_token_says_inactive(
    client: FlaskClient, tokens: Tokens, clock: FrozenClock
) -> None:
    token = tokens.get("la01-case-system")
    body = client.post(
        "/oauth2/introspect", data={"token": token, **_auth("prv01-epr", clock)}
    ).get_json()
    assert body == {"active": False}


def test_introspection_after_revocation_and_expiry(
    client: FlaskClient, tokens: Tokens, clock: FrozenClock
) -> None:
    revoked, expiring = tokens.get("la01-case-system"), tokens.get("la01-case-system")
    client.post("/oauth2/revoke", data={"token": revoked, **_auth("la01-case-system", clock)})
    assert client.post(
        "/oauth2/introspect", data={"token": revoked, **_auth("la01-case-system", clock)}
    ).get_json() == {"active": False}
    clock.advance(seconds=301)
    assert client.post(
        "/oauth2/introspect", data={"token": expiring, **_auth("la01-case-system", clock)}
    ).get_json() == {"active": False}


def test_smart_configuration(client: FlaskClient) -> None:
    body = client.get("/fhir/.well-known/smart-configuration").get_json()
    assert body["token_endpoint"] == TOKEN_URL
    assert body["revocation_endpoint"] == "http://127.0.0.1:8000/oauth2/revoke"
    assert body["introspection_endpoint"] == "http://127.0.0.1:8000/oauth2/introspect"
    assert body["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
    assert {"RS384", "ES384", "RS256", "ES256", "RS512"} <= set(
        body["token_endpoint_auth_signing_alg_values_supported"]
    )
    assert body["grant_types_supported"] == ["client_credentials"]
    assert body["capabilities"] == ["client-confidential-asymmetric"]
    assert "system/Patient.rs" in body["scopes_supported"]


def test_jwks_endpoint_is_empty_because_tokens_are_opaque(client: FlaskClient) -> None:
    assert client.get("/oauth2/jwks").get_json() == {"keys": []}
