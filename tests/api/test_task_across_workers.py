"""Two concurrent status changes of one Task with the same If-Match, under gunicorn with two
workers: one wins (200), the other gets 412 (`quality.md`, Concurrency)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import requests

from exchange.auth.client import request_token
from tests.conftest import world_client
from tests.factories import nhs_number, patient_json, task_json
from tests.server import world_server


def test_same_if_match_from_two_workers(tmp_path: Path, fresh_database_url: str) -> None:
    with world_server(tmp_path, fresh_database_url) as base:

        def bearer(client_id: str) -> dict[str, str]:
            token = request_token(client_id, world_client(client_id).key, f"{base}/oauth2/token")[
                "access_token"
            ]
            return {"Authorization": f"Bearer {token}", "Connection": "close"}

        la, provider = bearer("la01-case-system"), bearer("prv01-epr")
        patient = requests.post(
            f"{base}/fhir/Patient",
            json=patient_json(nhs_number(777), "2015-03-02"),
            headers=la,
            timeout=20,
        ).json()
        task = requests.post(
            f"{base}/fhir/Task", json=task_json(patient["id"]), headers=la, timeout=20
        ).json()
        for next_status in (
            "accepted",
            "in-progress",
        ):  # each round races two changes on one version
            version = task["meta"]["versionId"]
            assert sorted(
                race(
                    f"{base}/fhir/Task/{task['id']}",
                    {**task, "status": next_status},
                    version,
                    provider,
                )
            ) == [200, 412]
            task = requests.get(
                f"{base}/fhir/Task/{task['id']}", headers=provider, timeout=20
            ).json()
            assert task["meta"]["versionId"] == str(int(version) + 1)
            assert task["status"] == next_status


def race(url: str, body: dict[str, Any], version: str, headers: dict[str, str]) -> list[int]:
    """Two PUTs of `body` with If-Match `version`, released together; their statuses."""
    barrier = threading.Barrier(2)
    results: list[int] = []

    def change() -> None:
        barrier.wait()
        response = requests.put(
            url, json=body, headers={**headers, "If-Match": f'W/"{version}"'}, timeout=20
        )
        results.append(response.status_code)

    threads = [threading.Thread(target=change) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results
