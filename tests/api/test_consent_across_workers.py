"""Under gunicorn with two workers: two concurrent conditional creates of one NHS number
make one Patient, and a withdrawal takes effect for the very next request in every worker."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

from exchange.auth.client import request_token
from tests.conftest import world_client
from tests.factories import NHS_SYSTEM, consent_json, nhs_number, patient_json
from tests.server import world_server


def test_conditional_create_and_withdrawal_across_workers(
    tmp_path: Path, fresh_database_url: str
) -> None:
    with world_server(tmp_path, fresh_database_url) as base:
        token = request_token(
            "la01-case-system", world_client("la01-case-system").key, f"{base}/oauth2/token"
        )
        auth = {"Authorization": f"Bearer {token['access_token']}", "Connection": "close"}
        number = nhs_number(4242)
        conditional = {**auth, "If-None-Exist": f"identifier={NHS_SYSTEM}|{number}"}

        def create(_: int) -> Any:
            return requests.post(
                f"{base}/fhir/Patient",
                json=patient_json(number, "2015-03-02"),
                headers=conditional,
                timeout=20,
            )

        with ThreadPoolExecutor(max_workers=4) as pool:
            created = list(pool.map(create, range(4)))
        assert sorted(r.status_code for r in created) == [200, 200, 200, 201]
        assert len({r.json()["id"] for r in created}) == 1
        patient_id = created[0].json()["id"]

        recorded = requests.post(
            f"{base}/fhir/Consent",
            json=consent_json(patient_id, "2026-10-01T10:00:00+01:00"),
            headers=auth,
            timeout=20,
        )
        assert recorded.status_code == 201, recorded.json()
        consent = recorded.json()
        query = {
            "patient.identifier": f"{NHS_SYSTEM}|{number}",
            "recipient": "PRV01",
            "purpose": "ehcna-advice",
        }

        def decide(_: int) -> list[str]:
            body = requests.get(
                f"{base}/fhir/Consent/$evaluate", params=query, headers=auth, timeout=20
            ).json()
            return [
                p.get("valueCode") for p in body["parameter"] if p["name"] in ("decision", "reason")
            ]

        with ThreadPoolExecutor(max_workers=4) as pool:
            assert list(pool.map(decide, range(8))) == [["permit"]] * 8
        withdrawn = requests.put(
            f"{base}/fhir/Consent/{consent['id']}",
            json={**consent, "status": "inactive"},
            headers={**auth, "If-Match": 'W/"1"'},
            timeout=20,
        )
        assert withdrawn.status_code == 200
        with ThreadPoolExecutor(max_workers=4) as pool:
            assert list(pool.map(decide, range(8))) == [["deny", "consent-withdrawn"]] * 8
