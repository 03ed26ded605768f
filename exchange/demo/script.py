"""The demo's scripted exchange (`operations.md`, `exchange demo`): an LA registers a child,
records consent and sends a request; the provider uploads advice; the LA retrieves it —
through the real API (the WSGI app on the real database, store and keys), each client
authenticating with its demo key at the token endpoint."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask

from exchange.auth.client import ASSERTION_TYPE, client_assertion, load_private_key
from exchange.clock import Clock

DEMO_NHS_NUMBER = "9000000009"
CB = "https://fhir.send-exchange.example"
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"


class ScriptError(RuntimeError):
    """A step of the scripted exchange did not answer as expected."""


def run_script(
    app: Flask, keys: dict[str, Path], token_url: str, clock: Clock, say: Callable[[str], None]
) -> None:
    """Run the exchange, printing each step."""
    http = app.test_client()

    def bearer(client_id: str) -> dict[str, str]:
        form = {
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": client_assertion(
                client_id, load_private_key(keys[client_id]), token_url
            ),
        }
        answer = http.post("/oauth2/token", data=form)
        _expect(answer, 200, f"token for {client_id}")
        return {"Authorization": f"Bearer {answer.get_json()['access_token']}"}

    la, provider = bearer("la01-case-system"), bearer("prv01-epr")
    say(
        "1. la01-case-system and prv01-epr obtained access tokens with their demo keys "
        "(private_key_jwt)"
    )
    patient = {
        "resourceType": "Patient",
        "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": DEMO_NHS_NUMBER}],
        "birthDate": "2015-03-02",
        "name": [{"given": ["Alex"], "family": "Example"}],
    }
    created = http.post(
        "/fhir/Patient",
        json=patient,
        headers={
            **la,
            "If-None-Exist": f"identifier=https://fhir.nhs.uk/Id/nhs-number|{DEMO_NHS_NUMBER}",
        },
    )
    patient_id = _expect(created, (200, 201), "register the child")["id"]
    say(f"2. LA01 registered the child: Patient/{patient_id}")
    consent = _consent(patient_id, (clock.now() - timedelta(days=1)).isoformat(timespec="seconds"))
    recorded = _expect(http.post("/fhir/Consent", json=consent, headers=la), 201, "record consent")
    say(
        f"3. LA01 recorded the mother's consent to share for ehcna-advice: Consent/{recorded['id']}"
    )
    task = {
        "resourceType": "Task",
        "status": "requested",
        "intent": "order",
        "code": {
            "coding": [{"system": f"{CB}/CodeSystem/task-type", "code": "ehcna-health-advice"}]
        },
        "reasonCode": {"coding": [{"system": f"{CB}/CodeSystem/regulation", "code": "6-1-c"}]},
        "for": {"reference": f"Patient/{patient_id}"},
        "owner": {"identifier": {"system": ODS, "value": "PRV01"}},
    }
    request = _expect(http.post("/fhir/Task", json=task, headers=la), 201, "send the request")
    say(
        f"4. LA01 asked PRV01 for health advice: Task/{request['id']}, "
        f"due {request['restriction']['period']['end']}"
    )
    advice = b"%PDF-1.7\n% demo health advice\n%%EOF\n"
    binary = _expect(
        http.post(
            "/fhir/Binary", data=advice, headers={**provider, "Content-Type": "application/pdf"}
        ),
        201,
        "upload the advice",
    )
    document = {
        "resourceType": "DocumentReference",
        "status": "current",
        "docStatus": "final",
        "type": {"coding": [{"system": f"{CB}/CodeSystem/document-type", "code": "health-advice"}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "context": {"related": [{"reference": f"Task/{request['id']}"}]},
        "content": [
            {"attachment": {"url": f"Binary/{binary['id']}", "title": "Medical advice (demo)"}}
        ],
    }
    stored = _expect(
        http.post("/fhir/DocumentReference", json=document, headers=provider),
        201,
        "attach the advice",
    )
    say(
        f"5. PRV01 uploaded the advice, encrypted: DocumentReference/{stored['id']} "
        f"-> Binary/{binary['id']}"
    )
    retrieved = http.get(f"/fhir/Binary/{binary['id']}", headers=la)
    if retrieved.status_code != 200 or retrieved.data != advice:
        raise ScriptError(f"retrieve the advice: {retrieved.status_code}")
    say(
        f"6. LA01 retrieved the advice: {len(retrieved.data)} bytes, "
        f"{retrieved.headers['Repr-Digest']}"
    )


def _consent(patient_id: str, date_time: str) -> dict[str, Any]:
    return {
        "resourceType": "Consent",
        "status": "active",
        "scope": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": "patient-privacy",
                }
            ]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{patient_id}"},
        "dateTime": date_time,
        "contained": [
            {
                "resourceType": "RelatedPerson",
                "id": "mother",
                "patient": {"reference": f"Patient/{patient_id}"},
                "relationship": [
                    {
                        "coding": [
                            {
                                "system": f"{CB}/CodeSystem/parental-responsibility",
                                "code": "parent-with-pr",
                            }
                        ]
                    }
                ],
            }
        ],
        "extension": [
            {
                "url": f"{CB}/StructureDefinition/decision-maker",
                "extension": [{"url": "basis", "valueCode": "parental-responsibility"}],
            }
        ],
        "performer": [{"reference": "#mother"}],
        "provision": {
            "type": "permit",
            "action": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/consentaction",
                            "code": "disclose",
                        }
                    ]
                }
            ],
            "purpose": [{"system": f"{CB}/CodeSystem/purpose", "code": "ehcna-advice"}],
        },
    }


def _expect(response: Any, status: int | tuple[int, ...], step: str) -> dict[str, Any]:
    wanted = status if isinstance(status, tuple) else (status,)
    if response.status_code not in wanted:
        detail = response.get_data(as_text=True)[:300]
        raise ScriptError(f"{step}: {response.status_code} {detail}")
    body: dict[str, Any] = json.loads(response.get_data(as_text=True) or "{}")
    return body
