"""Replay and revocation hold across gunicorn worker processes (`quality.md`, Replay):
the jti store and the token table are in the database, not in a worker's memory."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import requests

from tests.conftest import world_client
from tests.oauth import ASSERTION_TYPE, claims_for, sign, token_form
from tests.server import world_server


def _fresh(session_url: str) -> requests.Response:
    """A request on a new connection, so the master may hand it to either worker."""
    return requests.get(session_url, headers={"Connection": "close"}, timeout=10)


def test_replay_and_revocation_across_two_workers(tmp_path: Path, fresh_database_url: str) -> None:
    with world_server(tmp_path, fresh_database_url) as base:
        token_url = f"{base}/oauth2/token"
        key = world_client("la01-case-system").key
        assertion = sign(claims_for("la01-case-system", token_url, datetime.now(UTC)), key)
        with ThreadPoolExecutor(max_workers=8) as pool:
            responses = list(
                pool.map(
                    lambda _: requests.post(
                        token_url,
                        data=token_form(assertion),
                        headers={"Connection": "close"},
                        timeout=10,
                    ),
                    range(8),
                )
            )
        assert sorted(r.status_code for r in responses) == [200] + [401] * 7
        replays = [r.json() for r in responses if r.status_code == 401]
        assert all(body["error"] == "invalid_client" for body in replays)

        token = next(r.json()["access_token"] for r in responses if r.status_code == 200)
        auth = {"Authorization": f"Bearer {token}", "Connection": "close"}
        with ThreadPoolExecutor(max_workers=4) as pool:
            before = list(
                pool.map(
                    lambda _: requests.get(f"{base}/fhir/Organization", headers=auth, timeout=10),
                    range(8),
                )
            )
        assert {r.status_code for r in before} == {200}
        revoke_assertion = sign(claims_for("la01-case-system", token_url, datetime.now(UTC)), key)
        revoked = requests.post(
            f"{base}/oauth2/revoke",
            data={
                "token": token,
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": revoke_assertion,
            },
            timeout=10,
        )
        assert revoked.status_code == 200
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=4) as pool:
            after = list(
                pool.map(
                    lambda _: requests.get(f"{base}/fhir/Organization", headers=auth, timeout=10),
                    range(8),
                )
            )
        assert {r.status_code for r in after} == {401}
        assert time.monotonic() - started < 10
