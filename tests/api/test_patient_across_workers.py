"""Concurrent first registrations of one NHS number under gunicorn with two workers: every
request answers, as the conditional create it is (`api.md`, Patient)."""

from __future__ import annotations

import threading
from pathlib import Path

import requests

from exchange.auth.client import request_token
from tests.conftest import world_client
from tests.factories import nhs_number, patient_json
from tests.server import world_server


def test_first_registrations_racing_across_workers_all_succeed(
    tmp_path: Path, fresh_database_url: str
) -> None:
    """Eight conditional creates of one new NHS number at once, over two workers: on
    PostgreSQL all but one transaction find no patient and insert, the unique NHS number
    refuses the losers, and the use case's one retry finds the winner's patient. Every
    request answers, one 201 and the rest 200, all naming the same patient."""
    with world_server(tmp_path, fresh_database_url) as base:
        token = request_token(
            "la01-case-system", world_client("la01-case-system").key, f"{base}/oauth2/token"
        )["access_token"]
        for round_number in range(3):
            number = nhs_number(4200 + round_number)
            barrier = threading.Barrier(8)
            answers: list[tuple[int, str]] = []

            def register(
                number: str = number,
                barrier: threading.Barrier = barrier,
                answers: list[tuple[int, str]] = answers,
            ) -> None:
                barrier.wait()
                response = requests.post(
                    f"{base}/fhir/Patient",
                    json=patient_json(number, "2015-03-02"),
                    headers={
                        "Authorization": f"Bearer {token}",
                        "Connection": "close",
                        "If-None-Exist": f"identifier=https://fhir.nhs.uk/Id/nhs-number|{number}",
                    },
                    timeout=60,
                )
                answers.append((response.status_code, response.json().get("id", "")))

            threads = [threading.Thread(target=register) for _ in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert sorted(status for status, _ in answers) == [200] * 7 + [201], answers
            assert len({patient for _, patient in answers}) == 1
