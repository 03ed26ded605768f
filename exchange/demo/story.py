"""The demo story's cast: each client of the demo set acting through the real API (a token
from the token endpoint, signed with its demo key, at the story clock's moment), and the
resources they send."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final, Protocol

from flask.testing import FlaskClient

from exchange.auth.client import ASSERTION_TYPE, client_assertion, load_private_key
from exchange.clock import london_date

CB: Final = "https://fhir.send-exchange.example"
ODS: Final = "https://fhir.nhs.uk/Id/ods-organization-code"
NHS: Final = "https://fhir.nhs.uk/Id/nhs-number"
#: The demo children: name, NHS number (test range, valid check digits), birth date.
CHILDREN: Final = {
    "Alex": ("9000000009", "2015-03-02"),
    "Sam": ("9000000017", "2016-07-19"),
    "Jo": ("9000000025", "2014-11-08"),
}
LA: Final = "la01-case-system"
ADVICE_PDF: Final = b"%PDF-1.7\n% demo health advice\n%%EOF\n"


class ScriptError(RuntimeError):
    """A step of the story did not answer as expected."""


class MovingClock(Protocol):
    """A clock the story moves forward."""

    def now(self) -> datetime: ...

    def move_to(self, moment: datetime) -> None: ...


@dataclass
class Story:
    """The clients, the clock and what has been made so far."""

    http: FlaskClient
    keys: dict[str, Path]
    token_url: str
    clock: MovingClock
    say: Callable[[str], None]
    made: dict[str, dict[str, Any]] = field(default_factory=dict)

    # -- HTTP, as each client -----------------------------------------------------------

    def bearer(self, client_id: str) -> dict[str, str]:
        assertion = client_assertion(
            client_id,
            load_private_key(self.keys[client_id]),
            self.token_url,
            issued=self.clock.now(),
        )
        form = {
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
        }
        answer = _expect(self.http.post("/oauth2/token", data=form), 200, f"token for {client_id}")
        return {"Authorization": f"Bearer {answer['access_token']}"}

    def call(
        self, method: str, path: str, who: str, status: int | tuple[int, ...], step: str, **kw: Any
    ) -> Any:
        headers = {**self.bearer(who), **kw.pop("headers", {})}
        response = self.http.open(path, method=method, headers=headers, **kw)
        wanted = status if isinstance(status, tuple) else (status,)
        if response.status_code not in wanted:
            detail = response.get_data(as_text=True)[:300]
            raise ScriptError(f"{step}: {response.status_code} {detail}")
        return response

    def json(
        self, method: str, path: str, who: str, status: int, step: str, **kw: Any
    ) -> dict[str, Any]:
        response = self.call(method, path, who, status, step, **kw)
        body: dict[str, Any] = json.loads(response.get_data(as_text=True))
        return body

    def step(self, moment: datetime, text: str) -> None:
        """Move the clock to `moment` and say what happened then."""
        self.clock.move_to(moment)
        self.say(f"{london_date(self.clock.now())}  {text}")

    # -- what the parties do ------------------------------------------------------------

    def register(self, name: str) -> dict[str, Any]:
        number, born = CHILDREN[name]
        patient = {
            "resourceType": "Patient",
            "identifier": [{"system": NHS, "value": number}],
            "birthDate": born,
            "name": [{"given": [name], "family": "Example"}],
        }
        stored = self.json(
            "POST",
            "/fhir/Patient",
            LA,
            201,
            f"register {name}",
            json=patient,
            headers={"If-None-Exist": f"identifier={NHS}|{number}"},
        )
        consent = self.json(
            "POST",
            "/fhir/Consent",
            LA,
            201,
            f"record consent for {name}",
            json=consent_json(stored["id"], (self.clock.now() - timedelta(hours=1)).isoformat()),
        )
        self.made[name], self.made[f"{name}-consent"] = stored, consent
        return stored

    def request(self, name: str, owner: str, key: str, **extra: Any) -> dict[str, Any]:
        task = {
            "resourceType": "Task",
            "status": "requested",
            "intent": "order",
            "code": {
                "coding": [{"system": f"{CB}/CodeSystem/task-type", "code": "ehcna-health-advice"}]
            },
            "reasonCode": {"coding": [{"system": f"{CB}/CodeSystem/regulation", "code": "6-1-c"}]},
            "identifier": [{"system": f"{CB}/Id/la-case-reference", "value": f"EHC-DEMO-{key}"}],
            "for": {"reference": f"Patient/{self.made[name]['id']}"},
            "owner": {"identifier": {"system": ODS, "value": owner}},
        }
        for name_, value in extra.items():  # None leaves an element out
            if value is None:
                task.pop(name_, None)
            else:
                task[name_] = value
        self.made[key] = self.json("POST", "/fhir/Task", LA, 201, f"request {key}", json=task)
        return self.made[key]

    def change(self, key: str, who: str, step: str, **changes: Any) -> dict[str, Any]:
        path = f"/fhir/Task/{self.made[key]['id']}"
        current = self.json("GET", path, who, 200, step)
        body = {**current, **changes}
        for listed in ("output", "note"):
            if listed in changes:
                body[listed] = [*current.get(listed, []), *changes[listed]]
        self.made[key] = self.json("PUT", path, who, 200, step, json=body)
        return self.made[key]

    def upload(self, name: str, key: str, who: str, title: str) -> dict[str, Any]:
        binary = self.json(
            "POST",
            "/fhir/Binary",
            who,
            201,
            f"upload advice for {key}",
            data=ADVICE_PDF,
            headers={"Content-Type": "application/pdf"},
        )
        document = {
            "resourceType": "DocumentReference",
            "status": "current",
            "docStatus": "final",
            "type": {
                "coding": [{"system": f"{CB}/CodeSystem/document-type", "code": "health-advice"}]
            },
            "subject": {"reference": f"Patient/{self.made[name]['id']}"},
            "context": {"related": [{"reference": f"Task/{self.made[key]['id']}"}]},
            "content": [{"attachment": {"url": f"Binary/{binary['id']}", "title": title}}],
        }
        stored = self.json(
            "POST", "/fhir/DocumentReference", who, 201, f"attach advice {key}", json=document
        )
        self.made[f"{key}-advice"] = stored
        return stored

    def complete(self, key: str, who: str) -> dict[str, Any]:
        advice = self.made[f"{key}-advice"]
        output = {
            "type": {"coding": [{"system": f"{CB}/CodeSystem/task-output-type", "code": "advice"}]},
            "valueReference": {"reference": f"DocumentReference/{advice['id']}"},
        }
        return self.change(key, who, f"complete {key}", status="completed", output=[output])


def coded(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": f"{CB}/CodeSystem/{system}", "code": code}]}


def consent_json(patient_id: str, date_time: str) -> dict[str, Any]:
    """A parent's consent to share for EHC needs assessment advice."""
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
                "id": "parent",
                "patient": {"reference": f"Patient/{patient_id}"},
                "relationship": [coded("parental-responsibility", "parent-with-pr")],
            }
        ],
        "extension": [
            {
                "url": f"{CB}/StructureDefinition/decision-maker",
                "extension": [{"url": "basis", "valueCode": "parental-responsibility"}],
            }
        ],
        "performer": [{"reference": "#parent"}],
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


def _expect(response: Any, status: int, step: str) -> dict[str, Any]:
    if response.status_code != status:
        detail = response.get_data(as_text=True)[:300]
        raise ScriptError(f"{step}: {response.status_code} {detail}")
    body: dict[str, Any] = json.loads(response.get_data(as_text=True) or "{}")
    return body
