"""Documents against the served API (gunicorn, real connections per transaction): a refused
read answers 403 at once and its audit record names the deciding Consent; reads made at
once each have their own audit record, committed before their answer; an upload in
progress holds up no other write."""

from __future__ import annotations

import http.client
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import select

from exchange.audit.models import AuditRecord
from exchange.auth.client import request_token
from exchange.db import Database
from tests.api.served_world import gets_at_once
from tests.conftest import world_client
from tests.factories import consent_json, nhs_number, patient_json, task_json
from tests.scenario import Child, document_json
from tests.server import world_server


def _child(patient: str) -> Child:
    return Child(patient, nhs_number(31337), "2015-03-02")


def _bearer(base: str, client_id: str) -> dict[str, str]:
    token = request_token(client_id, world_client(client_id).key, f"{base}/oauth2/token")
    return {"Authorization": f"Bearer {token['access_token']}"}


def _advice_document(
    base: str, la: dict[str, str], provider: dict[str, str]
) -> tuple[str, dict[str, Any], str, str]:
    """A child registered and consented by the LA, with a Task and the provider's advice
    document: the patient's id, the Consent, the Task's id and the document's id."""
    patient = requests.post(
        f"{base}/fhir/Patient",
        json=patient_json(nhs_number(31337), "2015-03-02"),
        headers=la,
        timeout=20,
    ).json()["id"]
    consent = requests.post(
        f"{base}/fhir/Consent",
        json=consent_json(patient, "2026-10-01T10:00:00+01:00"),
        headers=la,
        timeout=20,
    ).json()
    task = requests.post(
        f"{base}/fhir/Task", json=task_json(patient), headers=la, timeout=20
    ).json()["id"]
    binary = requests.post(
        f"{base}/fhir/Binary",
        data=b"%PDF-1.7\nadvice\n%%EOF",
        headers={**provider, "Content-Type": "application/pdf"},
        timeout=20,
    ).json()["id"]
    document = requests.post(
        f"{base}/fhir/DocumentReference",
        headers=provider,
        timeout=20,
        json=document_json(_child(patient), task, binary_id=binary, title="Advice"),
    ).json()["id"]
    return patient, consent, task, document


def test_refused_document_read_is_prompt_and_audited(
    tmp_path: Path, fresh_database_url: str
) -> None:
    with world_server(tmp_path, fresh_database_url, workers=1) as base:
        la, provider = _bearer(base, "la01-case-system"), _bearer(base, "prv01-epr")
        patient, consent, _, document = _advice_document(base, la, provider)
        assert (
            requests.put(
                f"{base}/fhir/Consent/{consent['id']}",
                json={**consent, "status": "inactive"},
                headers=la,
                timeout=20,
            ).status_code
            == 200
        )
        started = time.monotonic()
        refused = requests.get(f"{base}/fhir/DocumentReference/{document}", headers=la, timeout=20)
        assert refused.status_code == 403
        assert time.monotonic() - started < 5
    database = Database(fresh_database_url)
    with database.transaction() as session:
        row = session.scalars(
            select(AuditRecord)
            .where(AuditRecord.agent_org == "LA01", AuditRecord.outcome == "4")
            .order_by(AuditRecord.id.desc())
        ).first()
    database.dispose()
    assert row is not None
    event = json.loads(row.payload)
    assert event["outcomeDesc"] == "consent-withdrawn"
    references = {e["what"].get("reference") for e in event["entity"] if "what" in e}
    assert f"Consent/{consent['id']}" in references
    assert f"DocumentReference/{document}" in references
    assert str(row.patient_id) == patient


def test_reads_made_at_once_each_commit_their_own_audit_record_before_answering(
    tmp_path: Path, fresh_database_url: str
) -> None:
    """Eight clients reading at once across two workers: on SQLite the records of reads
    in one worker commit together (`db.GroupCommit`). Every read still has exactly one
    record, its own, and it is in the database by the time its client has the answer."""
    with world_server(tmp_path, fresh_database_url, workers=2) as base:
        la, provider = _bearer(base, "la01-case-system"), _bearer(base, "prv01-epr")
        patient, _, _, document = _advice_document(base, la, provider)
        reads = gets_at_once(base, fresh_database_url, f"/fhir/DocumentReference/{document}", la)
    assert {read.status for read in reads} == {200}
    for read in reads:
        # Exactly one record, its own, committed when its answer arrived.
        (row,) = read.records
        assert (row.outcome, row.agent_org, str(row.patient_id)) == ("0", "LA01", patient)
        event = json.loads(row.payload)
        references = {e["what"].get("reference") for e in event["entity"] if "what" in e}
        assert f"DocumentReference/{document}" in references


def test_documents_posted_at_once_each_get_their_own_answer(
    tmp_path: Path, fresh_database_url: str
) -> None:
    """Eight providers' clients posting at once across two workers, every fourth naming a
    Task that does not exist: each valid post answers 201 with its own document, whose
    Binary holds its own bytes; each refused one answers 404 and leaves nothing; the LA
    sees exactly the documents created. (Written for a create that committed with other
    threads' creates, measured and not kept: `bench/profiles/api-load.md`.)"""
    with world_server(tmp_path, fresh_database_url, workers=2) as base:
        la, provider = _bearer(base, "la01-case-system"), _bearer(base, "prv01-epr")
        patient, _, task, _ = _advice_document(base, la, provider)

        def post(n: int) -> tuple[int, bool, int, dict[str, Any], bytes]:
            content = f"%PDF-1.7\nadvice {n} {uuid.uuid4()}\n%%EOF".encode()
            valid = n % 4 != 0
            with requests.Session() as client:
                answer = client.post(
                    f"{base}/fhir/DocumentReference",
                    headers=provider,
                    timeout=30,
                    json=document_json(
                        _child(patient),
                        task if valid else str(uuid.uuid4()),
                        data=content,
                        title=f"Advice {n}",
                    ),
                )
            return n, valid, answer.status_code, answer.json(), content

        with ThreadPoolExecutor(max_workers=8) as pool:
            posted = list(pool.map(post, range(48)))
        created = set()
        for n, valid, status, body, content in posted:
            if not valid:
                assert (status, body["resourceType"]) == (404, "OperationOutcome")
                continue
            assert status == 201, body
            attachment = body["content"][0]["attachment"]
            assert attachment["title"] == f"Advice {n}"
            stored = requests.get(
                f"{base}/fhir/{attachment['url']}",
                headers={**la, "Accept": "application/pdf"},
                timeout=30,
            )
            assert stored.content == content
            created.add(body["id"])
        assert len(created) == 36
        bundle = requests.get(
            f"{base}/fhir/DocumentReference",
            params={"patient": patient, "_count": "100"},
            headers=la,
            timeout=30,
        ).json()
        seen = {entry["resource"]["id"] for entry in bundle.get("entry", [])}
        assert created < seen and len(seen) == len(created) + 1  # and the first document


def test_an_upload_in_progress_holds_up_no_other_write(
    tmp_path: Path, fresh_database_url: str
) -> None:
    """A Binary's bytes stream into the store before its transaction begins: while one
    client is still sending an upload (stalled half-way here), another's write commits
    at once. On SQLite the writer lock was held for the whole body, so one slow uploader
    stopped every write on the host (audit appends included) until it finished."""
    with world_server(tmp_path, fresh_database_url, workers=2) as base:
        token = request_token("prv01-epr", world_client("prv01-epr").key, f"{base}/oauth2/token")
        bearer = {"Authorization": f"Bearer {token['access_token']}"}
        body = b"%PDF-1.7\n" + b"x" * (4 * 1024 * 1024) + b"\n%%EOF\n"
        host, port = base.removeprefix("http://").split(":")
        slow = http.client.HTTPConnection(host, int(port), timeout=60)
        slow.putrequest("POST", "/fhir/Binary")
        for name, value in {
            **bearer,
            "Content-Type": "application/pdf",
            "Content-Length": str(len(body)),
        }.items():
            slow.putheader(name, value)
        slow.endheaders()
        try:
            slow.send(body[: len(body) // 2])  # and stalls
            time.sleep(0.5)  # the server is reading the body now
            started = time.monotonic()
            other = requests.post(
                f"{base}/fhir/Binary",
                data=b"%PDF-1.7\nother\n%%EOF",
                headers={**bearer, "Content-Type": "application/pdf"},
                timeout=30,
            )
            assert other.status_code == 201, other.text
            assert time.monotonic() - started < 10
            slow.send(body[len(body) // 2 :])
            response = slow.getresponse()
            assert response.status == 201, response.read()
            uploaded = json.loads(response.read())
        finally:
            slow.close()
        content = requests.get(
            f"{base}/fhir/Binary/{uploaded['id']}",
            headers={**bearer, "Accept": "application/pdf"},
            timeout=30,
        )
        assert content.content == body


def test_documents_open_after_a_key_rotation_while_the_service_runs(
    tmp_path: Path, fresh_database_url: str
) -> None:
    """`exchange keys rotate` with the service running (as `operations.md` has it done):
    every worker reads the rotated keyring, so documents re-wrapped under the new KEK
    still open, and a new upload's key is wrapped by the new KEK."""
    from exchange.documents.models import BinaryRow
    from tests.cli_runner import exchange

    with world_server(tmp_path, fresh_database_url, workers=2) as base:
        la, provider = _bearer(base, "la01-case-system"), _bearer(base, "prv01-epr")
        _, _, _, document = _advice_document(base, la, provider)
        url = f"{base}/fhir/DocumentReference/{document}"
        attachment = requests.get(url, headers=la, timeout=20).json()["content"][0]["attachment"]
        content = f"{base}/fhir/{attachment['url']}"
        pdf = {**la, "Accept": "application/pdf"}
        for _ in range(4):  # every worker has made its key provider (they take turns)
            assert requests.get(content, headers=pdf, timeout=20).status_code == 200
        rotated = exchange(
            "keys", "rotate", data_dir=tmp_path / "var", database_url=fresh_database_url
        )
        assert rotated.returncode == 0, rotated.stderr
        for _ in range(4):
            answer = requests.get(content, headers=pdf, timeout=20)
            assert answer.status_code == 200, answer.text
            assert answer.content == b"%PDF-1.7\nadvice\n%%EOF"
        fresh = requests.post(
            f"{base}/fhir/Binary",
            data=b"%PDF-1.7\nlater advice\n%%EOF",
            headers={**provider, "Content-Type": "application/pdf"},
            timeout=20,
        ).json()["id"]
    database = Database(fresh_database_url)
    with database.transaction() as session:
        refs = dict(session.execute(select(BinaryRow.id, BinaryRow.key_ref)).all())
    database.dispose()
    assert refs[uuid.UUID(fresh)] == "local:2"
    assert set(refs.values()) == {"local:2"}
