"""The LA → provider → LA flow over HTTP, under the access decision of access.md."""

from __future__ import annotations

import base64
import json
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select

from exchange.audit.models import AuditRecord
from exchange.db import Database
from tests.conftest import Tokens
from tests.factories import CB, consent_json, nhs_number, patient_json, pdf_bytes, task_json

LA, PROVIDER, ICB, OTHER_LA = "la01-case-system", "prv01-epr", "icb01-dco", "la02-case-system"
REVISED = b"%PDF-1.7\nrevised advice\n%%EOF\n"
JUSTIFICATION = "Section 47 enquiry opened today; urgent health information needed."


def _document(patient_id: str, task_id: str, binary_id: str | None = None, data: bytes | None = None,
              doc_type: str = "health-advice", **extra: Any) -> dict[str, Any]:
    attachment: dict[str, Any] = {"title": "Community paediatric advice", "contentType": "application/pdf"}
    if binary_id:
        attachment["url"] = f"Binary/{binary_id}"
    if data is not None:
        attachment["data"] = base64.b64encode(data).decode()
    return {
        "resourceType": "DocumentReference", "status": "current", "docStatus": "final",
        "type": {"coding": [{"system": f"{CB}/CodeSystem/document-type", "code": doc_type}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "author": [{"display": "Dr A Example"}],
        "context": {"related": [{"reference": f"Task/{task_id}"}]},
        "content": [{"attachment": attachment}],
        **extra,
    }


class Flow:
    def __init__(self, client: FlaskClient, tokens: Tokens) -> None:
        self.client, self.tokens = client, tokens
        headers = tokens.headers(LA)
        self.patient = client.post("/fhir/Patient", json=patient_json(nhs_number(9001), "2015-03-02"),
                                   headers=headers).get_json()["id"]
        consent = client.post("/fhir/Consent", json=consent_json(self.patient, "2026-10-01T10:00:00+01:00"), headers=headers)
        self.consent = consent.get_json()
        self.task = client.post("/fhir/Task", json=task_json(self.patient), headers=headers).get_json()["id"]
        self.advice = pdf_bytes(200_000)

    def upload(self) -> dict[str, Any]:
        binary = self.client.post("/fhir/Binary", data=self.advice, headers={**self.tokens.headers(PROVIDER),
                                                                            "Content-Type": "application/pdf"})
        assert binary.status_code == 201
        document = self.client.post("/fhir/DocumentReference", json=_document(self.patient, self.task, binary.get_json()["id"]),
                                    headers=self.tokens.headers(PROVIDER))
        assert document.status_code == 201, document.get_json()
        return dict(document.get_json())

    def get(self, path: str, who: str, **headers: str) -> Any:
        return self.client.get(path, headers={**self.tokens.headers(who), **headers})


def test_la_provider_la_flow(client: FlaskClient, tokens: Tokens, db: Database) -> None:
    flow = Flow(client, tokens)
    document = flow.upload()
    attachment = document["content"][0]["attachment"]
    assert attachment["url"].startswith("Binary/") and "data" not in attachment
    assert attachment["size"] == len(flow.advice)
    assert document["custodian"]["identifier"]["value"] == "PRV01"
    assert document["securityLabel"][0]["coding"][0]["code"] == "R"
    # The LA retrieves the advice: metadata, then the bytes.
    assert flow.get(f"/fhir/DocumentReference/{document['id']}", LA).status_code == 200
    content = flow.get(f"/fhir/{attachment['url']}", LA)
    assert content.status_code == 200
    assert content.data == flow.advice
    search = flow.get(f"/fhir/DocumentReference?patient=Patient/{flow.patient}", LA).get_json()
    assert search["total"] == 1
    with db.transaction() as session:
        reads = [json.loads(p) for p in session.scalars(
            select(AuditRecord.payload).where(AuditRecord.agent_org == "LA01", AuditRecord.kind == "rest:read"))]
    references = {e["what"].get("reference", "") for event in reads for e in event.get("entity", [])}
    assert any(r.startswith("Contract/") for r in references)  # the agreement that allowed it
    assert f"Consent/{flow.consent['id']}" in references  # and the consent


def test_withdrawal_refuses_the_next_read(client: FlaskClient, tokens: Tokens) -> None:
    flow = Flow(client, tokens)
    document = flow.upload()
    withdrawn = client.put(f"/fhir/Consent/{flow.consent['id']}", json={**flow.consent, "status": "inactive"},
                           headers=tokens.headers(LA))
    assert withdrawn.status_code == 200
    refused = flow.get(f"/fhir/DocumentReference/{document['id']}", LA)
    assert refused.status_code == 403
    assert refused.get_json()["issue"][0]["details"]["coding"][0]["code"] == "consent-withdrawn"
    binary = flow.get(f"/fhir/{document['content'][0]['attachment']['url']}", LA)
    assert binary.status_code == 403
    assert flow.advice[:9] not in binary.data
    assert flow.get(f"/fhir/DocumentReference?patient=Patient/{flow.patient}", LA).get_json()["total"] == 0
    # The custodian still reads its own document.
    assert flow.get(f"/fhir/DocumentReference/{document['id']}", PROVIDER).status_code == 200


def test_unrelated_la_gets_404(client: FlaskClient, tokens: Tokens) -> None:
    flow = Flow(client, tokens)
    document = flow.upload()
    assert flow.get(f"/fhir/DocumentReference/{document['id']}", OTHER_LA).status_code == 404
    assert flow.get(f"/fhir/{document['content'][0]['attachment']['url']}", OTHER_LA).status_code == 404
    assert flow.get(f"/fhir/DocumentReference?patient=Patient/{flow.patient}", OTHER_LA).get_json()["total"] == 0


def test_break_glass_read_is_flagged(client: FlaskClient, tokens: Tokens, db: Database) -> None:
    flow = Flow(client, tokens)
    document = flow.upload()
    qa = task_json(flow.patient, "ICB01", task_type="dco-quality-assurance", reason=None)
    assert client.post("/fhir/Task", json=qa, headers=tokens.headers(LA)).status_code == 201
    client.put(f"/fhir/Consent/{flow.consent['id']}", json={**flow.consent, "status": "inactive"}, headers=tokens.headers(LA))
    url = f"/fhir/DocumentReference/{document['id']}"
    assert flow.get(url, ICB).status_code == 403  # no consent for ordinary purposes
    no_reason = flow.get(url, ICB, **{"X-Purpose-Of-Use": "safeguarding"})
    assert no_reason.status_code == 400
    glass = flow.get(url, ICB, **{"X-Purpose-Of-Use": "safeguarding", "X-Justification": JUSTIFICATION})
    assert glass.status_code == 200
    not_allowed = flow.get(url, LA, **{"X-Purpose-Of-Use": "safeguarding", "X-Justification": JUSTIFICATION})
    assert not_allowed.status_code == 403
    assert not_allowed.get_json()["issue"][0]["details"]["coding"][0]["code"] == "break-glass-not-permitted"
    with db.transaction() as session:
        flagged = session.scalars(select(AuditRecord).where(AuditRecord.break_glass.is_(True),
                                                             AuditRecord.outcome == "0")).all()
    assert len(flagged) == 1
    assert JUSTIFICATION in flagged[0].payload
    assert flagged[0].agent_org == "ICB01"


def test_inline_content_and_supersede(client: FlaskClient, tokens: Tokens) -> None:
    flow = Flow(client, tokens)
    first = flow.upload()
    inline = _document(flow.patient, flow.task, data=REVISED,
                       relatesTo=[{"code": "replaces", "target": {"reference": f"DocumentReference/{first['id']}"}}])
    second = client.post("/fhir/DocumentReference", json=inline, headers=tokens.headers(PROVIDER))
    assert second.status_code == 201, second.get_json()
    assert flow.get(f"/fhir/DocumentReference/{first['id']}", PROVIDER).get_json()["status"] == "superseded"
    content = flow.get(f"/fhir/{second.get_json()['content'][0]['attachment']['url']}", LA)
    assert content.data == REVISED


def test_only_the_tasks_owner_provides_advice(client: FlaskClient, tokens: Tokens) -> None:
    flow = Flow(client, tokens)
    binary = client.post("/fhir/Binary", data=flow.advice, headers={**tokens.headers(LA), "Content-Type": "application/pdf"})
    response = client.post("/fhir/DocumentReference", json=_document(flow.patient, flow.task, binary.get_json()["id"]),
                           headers=tokens.headers(LA))
    assert response.status_code == 403
    other = client.post("/fhir/Binary", data=flow.advice, headers={**tokens.headers(PROVIDER), "Content-Type": "application/pdf"})
    stolen = client.post("/fhir/DocumentReference", json=_document(flow.patient, flow.task, binary.get_json()["id"]),
                         headers=tokens.headers(PROVIDER))
    assert stolen.status_code == 422  # a Binary someone else uploaded cannot be attached
    assert other.status_code == 201


def test_the_owner_completes_with_the_advice(client: FlaskClient, tokens: Tokens) -> None:
    flow = Flow(client, tokens)
    task = flow.get(f"/fhir/Task/{flow.task}", PROVIDER).get_json()
    early = client.put(f"/fhir/Task/{flow.task}", json={**task, "status": "completed"}, headers=tokens.headers(PROVIDER))
    assert early.status_code == 422  # no advice yet
    document = flow.upload()
    advice = {"type": {"coding": [{"system": f"{CB}/CodeSystem/task-output-type", "code": "advice"}]},
              "valueReference": {"reference": f"DocumentReference/{document['id']}"}}
    by_la = client.put(f"/fhir/Task/{flow.task}", json={**task, "status": "completed", "output": [advice]},
                       headers=tokens.headers(LA))
    assert by_la.status_code == 403
    done = client.put(f"/fhir/Task/{flow.task}", json={**task, "status": "completed", "output": [advice]},
                      headers=tokens.headers(PROVIDER))
    assert done.status_code == 200, done.get_json()
    assert done.get_json()["businessStatus"]["coding"][0]["code"] == "completed-on-time"
    assert "end" in done.get_json()["executionPeriod"]


def test_retention_crypto_shreds_content_and_keeps_metadata(client: FlaskClient, tokens: Tokens, db: Database,
                                                            settings: Any) -> None:
    from datetime import UTC, datetime

    from exchange.backends import blob_store
    from exchange.documents.housekeeping import apply_retention

    flow = Flow(client, tokens)
    document = flow.upload()
    with db.transaction() as session:
        dry = apply_retention(session, blob_store(settings), datetime(2026, 11, 24, tzinfo=UTC),
                              datetime(2026, 11, 25, tzinfo=UTC), dry_run=True)
    assert (dry.documents, dry.binaries) == (1, 1)
    assert flow.get(f"/fhir/{document['content'][0]['attachment']['url']}", LA).status_code == 200
    with db.transaction() as session:
        apply_retention(session, blob_store(settings), datetime(2026, 11, 24, tzinfo=UTC),
                        datetime(2026, 11, 25, tzinfo=UTC), dry_run=False)
    assert flow.get(f"/fhir/{document['content'][0]['attachment']['url']}", LA).status_code == 410
    assert flow.get(f"/fhir/DocumentReference/{document['id']}", LA).status_code == 200
    assert [p for p in (settings.data_dir / "blobs").rglob("*") if p.is_file()] == []


def test_status_changes_and_history(client: FlaskClient, tokens: Tokens) -> None:
    flow = Flow(client, tokens)
    document = flow.upload()
    url = f"/fhir/DocumentReference/{document['id']}"
    assert client.put(url, json={**document, "status": "entered-in-error"}, headers=tokens.headers(LA)).status_code == 403
    assert client.put(url, json={**document, "docStatus": "preliminary"}, headers=tokens.headers(PROVIDER)).status_code == 422
    assert client.put(url, json={**document, "status": "entered-in-error"},
                      headers={**tokens.headers(PROVIDER), "If-Match": 'W/"7"'}).status_code == 412
    changed = client.put(url, json={**document, "status": "entered-in-error"}, headers=tokens.headers(PROVIDER))
    assert changed.status_code == 200
    assert changed.get_json()["meta"]["versionId"] == "2"
    assert flow.get(url, LA).status_code == 404  # entered in error: only the custodian still reads it
    history = flow.get(f"{url}/_history", PROVIDER).get_json()
    assert [e["resource"]["status"] for e in history["entry"]] == ["entered-in-error", "current"]
    assert flow.get(f"{url}/_history/1", PROVIDER).get_json()["status"] == "current"


def test_document_search_parameters_and_paging(client: FlaskClient, tokens: Tokens, clock: Any) -> None:
    flow = Flow(client, tokens)
    first = flow.upload()
    clock.advance(days=1)
    second = flow.upload()
    ods = "https://fhir.nhs.uk/Id/ods-organization-code"

    def ids(query: str) -> list[str]:
        body = flow.get(f"/fhir/DocumentReference?{query}", LA).get_json()
        return [e["resource"]["id"] for e in body["entry"]]

    assert ids(f"patient=Patient/{flow.patient}") == [second["id"], first["id"]]
    assert ids(f"custodian={ods}|PRV01&_sort=date") == [first["id"], second["id"]]
    assert ids("custodian:identifier=PRV02") == []
    assert ids(f"related=Task/{flow.task}&type={CB}/CodeSystem/document-type|health-advice") == [second["id"], first["id"]]
    assert ids("date=lt2026-11-24") == [first["id"]]
    assert ids("status=superseded") == []
    page = flow.get("/fhir/DocumentReference?_count=1", LA).get_json()
    assert page["total"] == 2
    following = next(link["url"] for link in page["link"] if link["relation"] == "next")
    assert [e["resource"]["id"] for e in flow.get(following.replace("http://localhost", ""), LA).get_json()["entry"]] == [first["id"]]
