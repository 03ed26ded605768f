"""The LA → provider → LA flow over HTTP, under the access decision of access.md."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient
from psycopg._queries import MAX_CACHED_STATEMENT_LENGTH, MAX_CACHED_STATEMENT_PARAMS
from sqlalchemy import event, func, select

from exchange.agreements.models import Agreement, Organisation
from exchange.audit.models import AuditEntityRef, AuditRecord
from exchange.db import Database
from exchange.documents.models import BinaryRow
from exchange.versions import ResourceVersion
from tests.conftest import Tokens
from tests.factories import CB, pdf_bytes
from tests.scenario import (
    ICB,
    LA,
    OTHER_LA,
    OTHER_PROVIDER,
    PROVIDER,
    Child,
    Scenario,
    document_json,
)

REVISED = b"%PDF-1.7\nrevised advice\n%%EOF\n"
JUSTIFICATION = "Section 47 enquiry opened today; urgent health information needed."
ADVICE = pdf_bytes(200_000)


def _requested(world: Scenario) -> tuple[Child, dict[str, Any], dict[str, Any]]:
    """A child, the mother's consent to ehcna-advice, and the LA's request to PRV01."""
    child = world.child()
    return child, world.consent(child), world.request(child)


def _withdraw(world: Scenario, consent: dict[str, Any]) -> None:
    response = world.put(f"/fhir/Consent/{consent['id']}", LA, {**consent, "status": "inactive"})
    assert response.status_code == 200


def test_la_provider_la_flow(client: FlaskClient, tokens: Tokens, db: Database) -> None:
    world = Scenario(client, tokens)
    child, consent, task = _requested(world)
    document = world.upload(child, task, content=ADVICE)
    attachment = document["content"][0]["attachment"]
    assert attachment["url"].startswith("Binary/") and "data" not in attachment
    assert attachment["size"] == len(ADVICE)
    assert document["custodian"]["identifier"]["value"] == "PRV01"
    assert document["securityLabel"][0]["coding"][0]["code"] == "R"
    # The LA retrieves the advice: metadata, then the bytes.
    assert world.get(f"/fhir/DocumentReference/{document['id']}", LA).status_code == 200
    content = world.get(f"/fhir/{attachment['url']}", LA)
    assert content.status_code == 200
    assert content.data == ADVICE
    search = world.get(f"/fhir/DocumentReference?patient=Patient/{child.id}", LA).get_json()
    assert search["total"] == 1
    with db.transaction() as session:
        reads = [
            json.loads(p)
            for p in session.scalars(
                select(AuditRecord.payload).where(
                    AuditRecord.agent_org == "LA01", AuditRecord.kind == "rest:read"
                )
            )
        ]
    references = {
        e["what"].get("reference", "") for event in reads for e in event.get("entity", [])
    }
    assert any(r.startswith("Contract/") for r in references)  # the agreement that allowed it
    assert f"Consent/{consent['id']}" in references  # and the consent


def test_withdrawal_refuses_the_next_read(client: FlaskClient, tokens: Tokens) -> None:
    world = Scenario(client, tokens)
    child, consent, task = _requested(world)
    document = world.upload(child, task, content=ADVICE)
    _withdraw(world, consent)
    refused = world.get(f"/fhir/DocumentReference/{document['id']}", LA)
    assert refused.status_code == 403
    assert refused.get_json()["issue"][0]["details"]["coding"][0]["code"] == "consent-withdrawn"
    binary = world.get(f"/fhir/{document['content'][0]['attachment']['url']}", LA)
    assert binary.status_code == 403
    assert ADVICE[:9] not in binary.data
    assert (
        world.get(f"/fhir/DocumentReference?patient=Patient/{child.id}", LA).get_json()["total"]
        == 0
    )
    # The custodian still reads its own document.
    assert world.get(f"/fhir/DocumentReference/{document['id']}", PROVIDER).status_code == 200


def test_unrelated_la_gets_404(client: FlaskClient, tokens: Tokens) -> None:
    world = Scenario(client, tokens)
    child, _, task = _requested(world)
    document = world.upload(child, task, content=ADVICE)
    assert world.get(f"/fhir/DocumentReference/{document['id']}", OTHER_LA).status_code == 404
    assert (
        world.get(f"/fhir/{document['content'][0]['attachment']['url']}", OTHER_LA).status_code
        == 404
    )
    assert (
        world.get(f"/fhir/DocumentReference?patient=Patient/{child.id}", OTHER_LA).get_json()[
            "total"
        ]
        == 0
    )


def test_a_terminated_agreement_refuses_the_read_with_no_agreement(
    client: FlaskClient, tokens: Tokens, db: Database
) -> None:
    world = Scenario(client, tokens)
    child, _, task = _requested(world)
    document = world.upload(child, task, content=ADVICE)
    with db.transaction() as session:
        for agreement in session.scalars(select(Agreement)):
            agreement.status = "terminated"
    refused = world.get(f"/fhir/DocumentReference/{document['id']}", LA)
    assert refused.status_code == 403
    assert refused.get_json()["issue"][0]["details"]["coding"][0]["code"] == "no-agreement"
    assert world.get(f"/fhir/{document['content'][0]['attachment']['url']}", LA).status_code == 403
    # Left out of a search, and (unlike a consent refusal) not audited as a disclosure refused.
    assert (
        world.get(f"/fhir/DocumentReference?patient=Patient/{child.id}", LA).get_json()["total"]
        == 0
    )
    with db.transaction() as session:
        refusals = session.scalars(
            select(AuditRecord.payload).where(
                AuditRecord.agent_org == "LA01", AuditRecord.outcome == "4"
            )
        ).all()
    assert [json.loads(p)["outcomeDesc"] for p in refusals] == [
        "no-agreement",
        "no-agreement",
    ]  # the two reads
    # The custodian needs no agreement to read its own document.
    assert world.get(f"/fhir/DocumentReference/{document['id']}", PROVIDER).status_code == 200


def test_break_glass_read_is_flagged(client: FlaskClient, tokens: Tokens, db: Database) -> None:
    world = Scenario(client, tokens)
    child, consent, task = _requested(world)
    document = world.upload(child, task, content=ADVICE)
    world.request(child, "ICB01", task_type="dco-quality-assurance", reason=None)
    _withdraw(world, consent)
    url = f"/fhir/DocumentReference/{document['id']}"
    assert world.get(url, ICB).status_code == 403  # no consent for ordinary purposes
    no_reason = world.get(url, ICB, **{"X-Purpose-Of-Use": "safeguarding"})
    assert no_reason.status_code == 400
    glass = world.get(
        url, ICB, **{"X-Purpose-Of-Use": "safeguarding", "X-Justification": JUSTIFICATION}
    )
    assert glass.status_code == 200
    not_allowed = world.get(
        url, LA, **{"X-Purpose-Of-Use": "safeguarding", "X-Justification": JUSTIFICATION}
    )
    assert not_allowed.status_code == 403
    assert (
        not_allowed.get_json()["issue"][0]["details"]["coding"][0]["code"]
        == "break-glass-not-permitted"
    )
    with db.transaction() as session:
        flagged = session.scalars(
            select(AuditRecord).where(AuditRecord.break_glass.is_(True), AuditRecord.outcome == "0")
        ).all()
    assert len(flagged) == 1
    assert JUSTIFICATION in flagged[0].payload
    assert flagged[0].agent_org == "ICB01"


def test_every_document_event_names_the_custodian(
    client: FlaskClient, tokens: Tokens, db: Database
) -> None:
    world = Scenario(client, tokens)
    child, consent, task = _requested(world)
    document = world.upload(child, task, content=ADVICE)
    reference = f"DocumentReference/{document['id']}"
    assert world.get(f"/fhir/{reference}", LA).status_code == 200
    assert world.get(f"/fhir/{document['content'][0]['attachment']['url']}", LA).status_code == 200
    _withdraw(world, consent)
    assert world.get(f"/fhir/{reference}", LA).status_code == 403
    assert (
        world.get(f"/fhir/DocumentReference?patient=Patient/{child.id}", LA).get_json()["total"]
        == 0
    )
    with db.transaction() as session:
        rows = session.scalars(select(AuditRecord).order_by(AuditRecord.id)).all()
    about = [row for row in rows if reference in row.payload]
    assert [(row.agent_org, row.kind, row.outcome) for row in about] == [
        ("PRV01", "rest:create", "0"),
        ("LA01", "rest:read", "0"),  # the metadata
        ("LA01", "rest:read", "0"),  # the content
        ("LA01", "rest:read", "4"),  # the refused read
        ("LA01", "rest:read", "4"),  # left out of the search for consent
    ]
    assert {row.custodian_org for row in about} == {"PRV01"}


def test_inline_content_and_supersede(client: FlaskClient, tokens: Tokens) -> None:
    world = Scenario(client, tokens)
    child, _, task = _requested(world)
    first = world.upload(child, task, content=ADVICE)
    inline = document_json(
        child,
        task["id"],
        data=REVISED,
        relatesTo=[
            {"code": "replaces", "target": {"reference": f"DocumentReference/{first['id']}"}}
        ],
    )
    second = world.post("/fhir/DocumentReference", PROVIDER, inline)
    assert second.status_code == 201, second.get_json()
    assert (
        world.get(f"/fhir/DocumentReference/{first['id']}", PROVIDER).get_json()["status"]
        == "superseded"
    )
    content = world.get(f"/fhir/{second.get_json()['content'][0]['attachment']['url']}", LA)
    assert content.data == REVISED


@pytest.mark.parametrize(
    "data",
    ["not base64!", "QUJD\u0000REVG", "QUJD REVG", "QUJ", "QUJD=", "=QUJD", 12345],
    ids=["alphabet", "nul", "whitespace", "padding", "excess-padding", "leading-padding", "number"],
)
def test_inline_data_that_is_not_base64_is_refused_and_nothing_is_stored(
    client: FlaskClient, tokens: Tokens, db: Database, data: object
) -> None:
    """The model validates a stand-in for inline data; the one strict decode of the real
    data refuses what is not base64, with an OperationOutcome, before anything is kept."""
    world = Scenario(client, tokens)
    child, _, task = _requested(world)
    body = document_json(child, task["id"], data=REVISED)
    body["content"][0]["attachment"]["data"] = data
    with db.transaction() as session:
        before = session.scalar(select(func.count()).select_from(BinaryRow))
    response = world.post("/fhir/DocumentReference", PROVIDER, body)
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["resourceType"] == "OperationOutcome"
    with db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(BinaryRow)) == before
    assert (
        world.get(f"/fhir/DocumentReference?related=Task/{task['id']}", LA).get_json()["total"] == 0
    )


def _blobs(settings: Any) -> int:
    return sum(1 for path in (settings.data_dir / "blobs").rglob("*") if path.is_file())


def test_a_refused_inline_document_keeps_no_content(
    client: FlaskClient, tokens: Tokens, settings: Any
) -> None:
    """Inline content is stored before the transaction begins (the writer lock is not held
    through it); a request refused in the transaction deletes it at once."""
    world = Scenario(client, tokens)
    child, _, task = _requested(world)
    before = _blobs(settings)
    refused = {
        LA: 403,  # advice comes from the Task's owner
        OTHER_PROVIDER: 404,  # a Task it has no part in
    }
    for who, status in refused.items():
        response = world.post(
            "/fhir/DocumentReference", who, document_json(child, task["id"], data=ADVICE)
        )
        assert response.status_code == status, response.get_json()
    assert _blobs(settings) == before
    kept = world.post(
        "/fhir/DocumentReference", PROVIDER, document_json(child, task["id"], data=ADVICE)
    )
    assert kept.status_code == 201
    assert _blobs(settings) == before + 1


def test_refusals_keep_the_spec_order_when_the_content_is_bad_too(
    client: FlaskClient, tokens: Tokens
) -> None:
    """Validation and content are checked before the transaction, but refused where the
    spec's order puts them: an unseen Task (404) before an invalid resource (422) before
    the wrong party (403) before content that is not what it says (415)."""
    world = Scenario(client, tokens)
    child, _, task = _requested(world)
    not_pdf = document_json(child, task["id"], data=b"plain words, not a PDF")
    assert world.post("/fhir/DocumentReference", OTHER_PROVIDER, not_pdf).status_code == 404
    assert world.post("/fhir/DocumentReference", LA, not_pdf).status_code == 403
    invalid = {**not_pdf, "status": "not-a-status"}
    response = world.post("/fhir/DocumentReference", PROVIDER, invalid)
    assert response.status_code == 422
    assert "status" in json.dumps(response.get_json())
    assert world.post("/fhir/DocumentReference", PROVIDER, not_pdf).status_code == 415


def test_only_the_tasks_owner_provides_advice(client: FlaskClient, tokens: Tokens) -> None:
    world = Scenario(client, tokens)
    child, _, task = _requested(world)
    binary = world.post("/fhir/Binary", LA, data=ADVICE, **{"Content-Type": "application/pdf"})
    response = world.post(
        "/fhir/DocumentReference",
        LA,
        document_json(child, task["id"], binary_id=binary.get_json()["id"]),
    )
    assert response.status_code == 403
    other = world.post("/fhir/Binary", PROVIDER, data=ADVICE, **{"Content-Type": "application/pdf"})
    stolen = world.post(
        "/fhir/DocumentReference",
        PROVIDER,
        document_json(child, task["id"], binary_id=binary.get_json()["id"]),
    )
    assert stolen.status_code == 422  # a Binary someone else uploaded cannot be attached
    assert other.status_code == 201


def test_the_owner_completes_with_the_advice(client: FlaskClient, tokens: Tokens) -> None:
    world = Scenario(client, tokens)
    child, _, requested = _requested(world)
    url = f"/fhir/Task/{requested['id']}"
    task = world.get(url, PROVIDER).get_json()
    early = world.put(url, PROVIDER, {**task, "status": "completed"})
    assert early.status_code == 422  # no advice yet
    document = world.upload(child, requested, content=ADVICE)
    advice = {
        "type": {"coding": [{"system": f"{CB}/CodeSystem/task-output-type", "code": "advice"}]},
        "valueReference": {"reference": f"DocumentReference/{document['id']}"},
    }
    by_la = world.put(url, LA, {**task, "status": "completed", "output": [advice]})
    assert by_la.status_code == 403
    done = world.put(url, PROVIDER, {**task, "status": "completed", "output": [advice]})
    assert done.status_code == 200, done.get_json()
    assert done.get_json()["businessStatus"]["coding"][0]["code"] == "completed-on-time"
    assert "end" in done.get_json()["executionPeriod"]


def test_retention_crypto_shreds_content_and_keeps_metadata(
    client: FlaskClient, tokens: Tokens, db: Database, settings: Any
) -> None:
    from datetime import UTC, datetime

    from exchange.backends import blob_store
    from exchange.documents.housekeeping import apply_retention

    world = Scenario(client, tokens)
    child, _, task = _requested(world)
    document = world.upload(child, task, content=ADVICE)
    dry = apply_retention(
        db,
        blob_store(settings),
        datetime(2026, 11, 24, tzinfo=UTC),
        datetime(2026, 11, 25, tzinfo=UTC),
        dry_run=True,
    )
    assert (dry.documents, dry.binaries) == (1, 1)
    assert world.get(f"/fhir/{document['content'][0]['attachment']['url']}", LA).status_code == 200
    apply_retention(
        db,
        blob_store(settings),
        datetime(2026, 11, 24, tzinfo=UTC),
        datetime(2026, 11, 25, tzinfo=UTC),
        dry_run=False,
    )
    assert world.get(f"/fhir/{document['content'][0]['attachment']['url']}", LA).status_code == 410
    assert world.get(f"/fhir/DocumentReference/{document['id']}", LA).status_code == 200
    assert [p for p in (settings.data_dir / "blobs").rglob("*") if p.is_file()] == []


def test_a_retention_run_that_fails_to_commit_shreds_nothing(
    client: FlaskClient,
    tokens: Tokens,
    db: Database,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The keys' destruction and the run's audit record commit before a blob is deleted: if
    they fail (the audit insert here, a fault not otherwise causable), the LA can still
    download the document."""
    from datetime import UTC, datetime

    from exchange.backends import blob_store
    from exchange.documents import housekeeping

    world = Scenario(client, tokens)
    child, _, task = _requested(world)
    document = world.upload(child, task, content=ADVICE)

    def failing_record(*_: object, **__: object) -> None:
        raise RuntimeError("the audit insert failed")

    monkeypatch.setattr(housekeeping, "record", failing_record)
    with pytest.raises(RuntimeError):
        housekeeping.apply_retention(
            db,
            blob_store(settings),
            datetime(2026, 11, 24, tzinfo=UTC),
            datetime(2026, 11, 25, tzinfo=UTC),
            dry_run=False,
        )
    download = world.get(f"/fhir/{document['content'][0]['attachment']['url']}", LA)
    assert download.status_code == 200
    assert download.data == ADVICE


def test_status_changes_and_history(client: FlaskClient, tokens: Tokens) -> None:
    world = Scenario(client, tokens)
    child, _, task = _requested(world)
    document = world.upload(child, task, content=ADVICE)
    url = f"/fhir/DocumentReference/{document['id']}"
    assert world.put(url, LA, {**document, "status": "entered-in-error"}).status_code == 403
    assert world.put(url, PROVIDER, {**document, "docStatus": "preliminary"}).status_code == 422
    assert (
        world.put(
            url, PROVIDER, {**document, "status": "entered-in-error"}, **{"If-Match": 'W/"7"'}
        ).status_code
        == 412
    )
    changed = world.put(url, PROVIDER, {**document, "status": "entered-in-error"})
    assert changed.status_code == 200
    assert changed.get_json()["meta"]["versionId"] == "2"
    assert (
        world.get(url, LA).status_code == 404
    )  # entered in error: only the custodian still reads it
    history = world.get(f"{url}/_history", PROVIDER).get_json()
    assert [e["resource"]["status"] for e in history["entry"]] == ["entered-in-error", "current"]
    assert world.get(f"{url}/_history/1", PROVIDER).get_json()["status"] == "current"


def test_document_search_parameters_and_paging(
    client: FlaskClient, tokens: Tokens, clock: Any
) -> None:
    world = Scenario(client, tokens)
    child, _, task = _requested(world)
    first = world.upload(child, task, content=ADVICE)
    clock.advance(days=1)
    world = Scenario(client, tokens)  # a day later: the tokens of yesterday have expired
    second = world.upload(child, task, content=ADVICE)
    ods = "https://fhir.nhs.uk/Id/ods-organization-code"

    def ids(query: str) -> list[str]:
        body = world.get(f"/fhir/DocumentReference?{query}", LA).get_json()
        return [e["resource"]["id"] for e in body["entry"]]

    assert ids(f"patient=Patient/{child.id}") == [second["id"], first["id"]]
    assert ids(f"custodian={ods}|PRV01&_sort=date") == [first["id"], second["id"]]
    assert ids("custodian:identifier=PRV02") == []
    assert ids(f"related=Task/{task['id']}&type={CB}/CodeSystem/document-type|health-advice") == [
        second["id"],
        first["id"],
    ]
    assert ids("date=lt2026-11-24") == [first["id"]]
    assert ids("status=superseded") == []
    page = world.get("/fhir/DocumentReference?_count=1", LA).get_json()
    assert page["total"] == 2
    following = next(link["url"] for link in page["link"] if link["relation"] == "next")
    assert [
        e["resource"]["id"]
        for e in world.get(following.replace("http://localhost", ""), LA).get_json()["entry"]
    ] == [first["id"]]


def test_an_inline_documents_rows_are_one_statement_on_postgresql(
    client: FlaskClient, tokens: Tokens, db: Database
) -> None:
    """A document's Binary, row, first version, custodian access and audit record are
    written together (`db.write_together`): on PostgreSQL one INSERT, within the length
    and parameter count whose parsing psycopg caches (past either it parses the SQL again
    on every create: a tenth of the create's server time); on SQLite, each in turn. Every
    row is there afterwards, on both."""
    world = Scenario(client, tokens)
    child, _, task = _requested(world)
    world.auth(PROVIDER)  # the token is not the create's
    writes: list[tuple[str, Any]] = []

    def seen(_conn: Any, _cursor: Any, sql: str, parameters: Any, *_: Any) -> None:
        if re.search(r"\b(INSERT|UPDATE|DELETE)\b", sql):
            writes.append((sql, parameters))

    event.listen(db.engine, "before_cursor_execute", seen)
    try:
        response = world.post(
            "/fhir/DocumentReference", PROVIDER, document_json(child, task["id"], data=REVISED)
        )
    finally:
        event.remove(db.engine, "before_cursor_execute", seen)
    assert response.status_code == 201, response.get_json()
    created = response.get_json()
    if db.dialect == "postgresql":
        assert len(writes) == 1, [sql[:60] for sql, _ in writes]
        sql, parameters = writes[0]
        assert len(sql) <= MAX_CACHED_STATEMENT_LENGTH
        assert len(parameters) <= MAX_CACHED_STATEMENT_PARAMS
    else:
        assert len(writes) >= 5
    binary_id = created["content"][0]["attachment"]["url"].removeprefix("Binary/")
    with db.transaction() as session:
        provider = session.scalars(select(Organisation).where(Organisation.ods == "PRV01")).one()
        assert created["custodian"]["display"] == provider.name
        binary = session.get(BinaryRow, uuid.UUID(binary_id))
        assert binary is not None and str(binary.document_id) == created["id"]
        version = session.get(ResourceVersion, ("DocumentReference", uuid.UUID(created["id"]), 1))
        assert version is not None and version.resource == created
        assert session.scalar(
            select(func.count())
            .select_from(AuditEntityRef)
            .where(AuditEntityRef.reference == f"DocumentReference/{created['id']}")
        )
    assert world.get(f"/fhir/Binary/{binary_id}", LA, Accept="application/pdf").data == REVISED


def test_retention_goes_in_batches_each_audited(
    client: FlaskClient,
    tokens: Tokens,
    db: Database,
    settings: Any,
    clock: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Three documents past retention in batches of two: each batch's keys destroyed and
    audited together; the document dated after is untouched. A second run finds nothing
    left to destroy and is audited once."""
    from datetime import timedelta

    from exchange.backends import blob_store
    from exchange.documents import housekeeping

    monkeypatch.setattr(housekeeping, "BATCH", 2)
    world = Scenario(client, tokens)
    old = []
    for _ in range(3):
        child, _, task = _requested(world)
        old.append(world.upload(child, task, content=ADVICE))
    clock.advance(seconds=10)
    child, _, task = _requested(world)
    kept = world.upload(child, task, content=ADVICE)
    before = clock.now() - timedelta(seconds=5)
    result = housekeeping.apply_retention(db, blob_store(settings), before, clock.now(), False)
    assert (result.documents, result.binaries, result.left) == (3, 3, 0)
    for document in old:
        assert (
            world.get(f"/fhir/{document['content'][0]['attachment']['url']}", LA).status_code == 410
        )
    download = world.get(f"/fhir/{kept['content'][0]['attachment']['url']}", LA)
    assert download.status_code == 200 and download.data == ADVICE
    again = housekeeping.apply_retention(db, blob_store(settings), before, clock.now(), False)
    assert (again.documents, again.binaries) == (3, 0)
    with db.transaction() as session:
        runs = [
            {
                d["type"]: d["valueString"]
                for e in json.loads(row.payload)["entity"]
                for d in e.get("detail", [])
            }
            for row in session.scalars(
                select(AuditRecord)
                .where(AuditRecord.kind == "operator:retention")
                .order_by(AuditRecord.id)
            )
        ]
    day = before.date().isoformat()
    assert runs == [
        {"before": day, "documents": "2", "shredded": "2"},
        {"before": day, "documents": "1", "shredded": "1"},
        {"before": day, "documents": "3", "shredded": "0"},
    ]
