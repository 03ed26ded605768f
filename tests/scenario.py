"""One scenario builder for API tests: the test world's clients doing what LAs, providers
and ICBs do, through the real app (tokens from the real token endpoint, cached per client
while the frozen clock stands still)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from flask.testing import FlaskClient

from tests.conftest import Tokens
from tests.factories import (
    CB,
    NHS_SYSTEM,
    consent_json,
    nhs_number,
    patient_json,
    pdf_bytes,
    status_reason,
    task_json,
)

LA, OTHER_LA, UNAGREED_LA = "la01-case-system", "la02-case-system", "la03-case-system"
PROVIDER, OTHER_PROVIDER, ICB = "prv01-epr", "prv02-epr", "icb01-dco"
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
_numbers = itertools.count(70_000)


@dataclass(frozen=True)
class Child:
    """A registered child: the Patient id and NHS number."""

    id: str
    number: str
    born: str


def document_json(
    child: Child,
    task_id: str,
    *,
    binary_id: str | None = None,
    data: bytes | None = None,
    doc_type: str = "health-advice",
    title: str = "Community paediatric advice",
    content_type: str = "application/pdf",
    **extra: Any,
) -> dict[str, Any]:
    """A DocumentReference as a provider (or LA) sends it."""
    import base64

    attachment: dict[str, Any] = {"title": title, "contentType": content_type}
    if binary_id:
        attachment["url"] = f"Binary/{binary_id}"
    if data is not None:
        attachment["data"] = base64.b64encode(data).decode()
    return {
        "resourceType": "DocumentReference",
        "status": "current",
        "docStatus": "final",
        "type": {"coding": [{"system": f"{CB}/CodeSystem/document-type", "code": doc_type}]},
        "subject": {"reference": f"Patient/{child.id}"},
        "author": [{"display": "Dr A Example"}],
        "context": {"related": [{"reference": f"Task/{task_id}"}]},
        "content": [{"attachment": attachment}],
        **extra,
    }


class Scenario:
    """Drives the API as the world's clients."""

    def __init__(self, client: FlaskClient, tokens: Tokens) -> None:
        self.client, self.tokens = client, tokens
        self._headers: dict[str, dict[str, str]] = {}

    # --- HTTP -----------------------------------------------------------------------
    def auth(self, who: str) -> dict[str, str]:
        """A bearer header for `who` (one token per client per test)."""
        if who not in self._headers:
            self._headers[who] = self.tokens.headers(who)
        return self._headers[who]

    def forget_tokens(self) -> None:
        """Drop the cached tokens (after the test moves the clock past their expiry)."""
        self._headers.clear()

    def get(self, path: str, who: str, **headers: str) -> Any:
        return self.client.get(path, headers={**self.auth(who), **headers})

    def post(
        self, path: str, who: str, body: Any = None, *, data: bytes | None = None, **headers: str
    ) -> Any:
        if data is not None:
            return self.client.post(path, data=data, headers={**self.auth(who), **headers})
        return self.client.post(path, json=body, headers={**self.auth(who), **headers})

    def put(self, path: str, who: str, body: Any, **headers: str) -> Any:
        return self.client.put(path, json=body, headers={**self.auth(who), **headers})

    def patch(self, path: str, who: str, operations: list[dict[str, Any]], **headers: str) -> Any:
        return self.client.patch(
            path,
            json=operations,
            headers={**self.auth(who), **headers, "Content-Type": "application/json-patch+json"},
        )

    # --- the exchange ---------------------------------------------------------------
    def child(self, born: str = "2015-03-02", who: str = LA, number: str | None = None) -> Child:
        """Register a child (conditional create) and return it."""
        number = number or nhs_number(next(_numbers))
        response = self.post(
            "/fhir/Patient",
            who,
            patient_json(number, born),
            **{"If-None-Exist": f"identifier={NHS_SYSTEM}|{number}"},
        )
        assert response.status_code in (200, 201), response.get_json()
        return Child(response.get_json()["id"], number, born)

    def consent(
        self,
        child: Child,
        date_time: str = "2026-10-01T10:00:00+01:00",
        who: str = LA,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Record a Consent (a mother's permit for ehcna-advice unless told otherwise)."""
        response = self.post("/fhir/Consent", who, consent_json(child.id, date_time, **kwargs))
        assert response.status_code == 201, response.get_json()
        return dict(response.get_json())

    def request(
        self, child: Child, owner: str = "PRV01", who: str = LA, **kwargs: Any
    ) -> dict[str, Any]:
        """An LA's advice request (Task) for the child."""
        response = self.post("/fhir/Task", who, task_json(child.id, owner, **kwargs))
        assert response.status_code == 201, response.get_json()
        return dict(response.get_json())

    def forward(self, task: dict[str, Any], to: str, who: str = PROVIDER) -> dict[str, Any]:
        """The owner forwards a Task to another organisation."""
        current = self.get(f"/fhir/Task/{task['id']}", who).get_json()
        body = {
            **current,
            "owner": {"identifier": {"system": ODS, "value": to}},
            "statusReason": status_reason("forwarded"),
        }
        response = self.put(f"/fhir/Task/{task['id']}", who, body)
        assert response.status_code == 200, response.get_json()
        return dict(response.get_json())

    def upload(
        self,
        child: Child,
        task: dict[str, Any],
        who: str = PROVIDER,
        content: bytes | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Upload advice (Binary, then DocumentReference) for the Task."""
        content = content if content is not None else pdf_bytes(4096)
        binary = self.post(
            "/fhir/Binary",
            who,
            data=content,
            **{"Content-Type": kwargs.get("content_type", "application/pdf")},
        )
        assert binary.status_code == 201, binary.get_json()
        response = self.post(
            "/fhir/DocumentReference",
            who,
            document_json(child, task["id"], binary_id=binary.get_json()["id"], **kwargs),
        )
        assert response.status_code == 201, response.get_json()
        return dict(response.get_json())
