"""`exchange demo` tells the whole story (issue 12) and every record it names is readable
through the served API by a party to the story, with the demo's own keys."""

from __future__ import annotations

import re
from pathlib import Path

import requests
from joserfc.jwk import ECKey, RSAKey

from exchange.auth.client import load_private_key, request_token
from tests.cli_runner import exchange
from tests.server import running_server

REFERENCE = re.compile(r"\b(Patient|Consent|Task|DocumentReference|Binary)/([0-9a-f-]{36})\b")
#: What the story must tell, in this order.
STEPS = (
    "LA01 registers Alex",
    "records the parent's consent",
    "LA01 asks for health advice, due in 6 weeks",
    "PRV01 accepts Alex's request",
    "forwards that request to the ICB",
    "PRV01 starts work on Alex's advice",
    "PRV02 records a clock exception for Jo",
    "PRV01 uploads Alex's advice, encrypted, and completes the request",
    "LA01 retrieves Alex's advice",
    "Sam's parent withdraws consent",
    "LA01 tries to read Sam's advice: 403 consent-withdrawn",
    "ICB01 reads Sam's advice under break-glass (safeguarding), with its justification",
    "PRV02 uploads Jo's advice and completes the request, 3 days late",
    "runs the six-week report for",
    "4 due, 2 within 6 weeks (50.0%), 0 late, 1 late with a clock exception, "
    "1 outstanding and overdue; 2 exception(s) listed",
    "LA01's IG lead finds",
    "audit chain verified:",
)


def test_the_demo_tells_the_whole_story(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    told = exchange("demo", data_dir=data_dir)
    assert told.returncode == 0, told.stderr
    positions = [told.stdout.find(step) for step in STEPS]
    assert -1 not in positions, [s for s, p in zip(STEPS, positions, strict=True) if p == -1]
    assert positions == sorted(positions)
    named = set(REFERENCE.findall(told.stdout))
    assert {kind for kind, _ in named} == {
        "Patient",
        "Consent",
        "Task",
        "DocumentReference",
        "Binary",
    }
    database_url = f"sqlite:///{data_dir / 'exchange.db'}"
    with running_server(data_dir, database_url, workers=1) as base:
        tokens = {
            client_id: request_token(
                client_id,
                _key(data_dir, client_id),
                f"{base}/oauth2/token",
            )["access_token"]
            for client_id in ("la01-case-system", "prv01-epr", "prv02-epr", "icb01-dco")
        }
        for kind, resource_id in sorted(named):
            answers = {
                client_id: requests.get(
                    f"{base}/fhir/{kind}/{resource_id}",
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=10,
                ).status_code
                for client_id, token in tokens.items()
            }
            assert 200 in answers.values(), (kind, answers)


def _key(data_dir: Path, client_id: str) -> ECKey | RSAKey:
    return load_private_key(data_dir / "demo" / f"{client_id}.private.jwk.json")
