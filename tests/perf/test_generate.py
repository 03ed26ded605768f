"""The benchmark data generator writes what the service itself would have stored: every
resource passes the service's own validation, every Task version follows from the one
before by the workflow's rules, the columns say what the resources say, the audit trail
is canonical JSON in a chain that verifies, and the generated clients read and search the
generated children through the API."""

from __future__ import annotations

import base64
import itertools
import json
import random
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import psycopg
import pytest
from joserfc.jwk import ECKey
from sqlalchemy import select

from bench.generate import conninfo, generate, public_jwks
from exchange.advice_requests.models import TaskRow
from exchange.advice_requests.profile import ods_of, status_reason_of, task_profile_issues
from exchange.advice_requests.workflow import (
    OWNER,
    REQUESTER,
    Document,
    NotYourChange,
    check_change,
)
from exchange.agreements.models import Organisation
from exchange.audit.chain import canonical_json, verify_chain
from exchange.codes import NHS_NUMBER_SYSTEM, ODS_SYSTEM
from exchange.consent.profile import consent_profile_issues
from exchange.db import Database
from exchange.documents.models import DocumentRow
from exchange.documents.profile import document_profile_issues, related_task_ids
from exchange.fhir.validation import validate_resource
from exchange.patients.profile import patient_profile_issues
from tests.conftest import PG_URL, DatabaseFactory
from tests.perf.conftest import UNTIL, Generated, bearer, served

PROFILES = {
    "Patient": patient_profile_issues,
    "Consent": consent_profile_issues,
    "Task": task_profile_issues,
    "DocumentReference": document_profile_issues,
}


def _versions(connection: psycopg.Connection[Any]) -> dict[tuple[str, uuid.UUID], list[Any]]:
    versions: dict[tuple[str, uuid.UUID], list[Any]] = {}
    for kind, resource_id, _version, resource in connection.execute(
        "SELECT resource_type, resource_id, version, resource FROM resource_version "
        "ORDER BY resource_type, resource_id, version"
    ):
        versions.setdefault((kind, resource_id), []).append(resource)
    return versions


def test_generated_resources_are_valid_and_tasks_follow_the_workflow(generated: Generated) -> None:
    with psycopg.connect(conninfo(generated.url)) as connection:
        versions = _versions(connection)
        documents = {
            f"DocumentReference/{document_id}": Document(
                doc_type, ods, frozenset(related_task_ids(resource))
            )
            for document_id, doc_type, ods, resource in connection.execute(
                "SELECT d.id, d.doc_type, o.ods, d.resource FROM document_reference d "
                "JOIN organisation o ON o.id = d.custodian_id"
            )
        }
    rng = random.Random(14)
    sample = rng.sample(sorted(versions, key=str), 400)
    for kind, resource_id in sample:
        for resource in versions[(kind, resource_id)]:
            validate_resource(resource, kind, PROFILES[kind])
            assert resource["id"] == str(resource_id) or kind == "Patient"
    tasks = [key for key in versions if key[0] == "Task" and len(versions[key]) > 1]
    for key in rng.sample(tasks, 300):
        chain = versions[key]
        for old, new in itertools.pairwise(chain):
            for roles in ({OWNER}, {REQUESTER}):
                try:
                    check_change(old, new, roles, str(key[1]), documents.get)
                    break
                except NotYourChange:
                    continue
            else:
                raise AssertionError(f"no party may change {old['status']} to {new['status']}")


def test_generated_columns_say_what_the_resources_say(generated: Generated) -> None:
    database = Database(generated.url)
    with database.transaction() as session:
        ods = {
            row.id: row.ods for row in session.execute(select(Organisation.id, Organisation.ods))
        }
        for row in session.scalars(select(TaskRow).limit(500)):
            resource = row.resource
            assert resource["status"] == row.status
            assert status_reason_of(resource) == row.status_reason
            assert ods_of(resource["owner"]) == ods[row.owner_id]
            assert ods_of(resource["requester"]) == ods[row.requester_id]
            assert resource["restriction"]["period"]["end"] == row.due_date.isoformat()
            assert int(resource["meta"]["versionId"]) == row.version
            assert (row.completed_on is not None) == (row.status == "completed")
        for document in session.scalars(select(DocumentRow).limit(500)):
            attachment = document.resource["content"][0]["attachment"]
            assert attachment["url"] == f"Binary/{document.binary_id}"
            assert base64.b64decode(attachment["hash"])  # the SHA-1, as attach_document writes
            assert ods_of(document.resource["custodian"]) == ods[document.custodian_id]
    database.dispose()


def test_generated_audit_trail_is_canonical_and_verifies(generated: Generated) -> None:
    database = Database(generated.url)
    with database.transaction() as session:
        result = verify_chain(session)
        assert result.ok, result.problem
        assert result.checked >= 40_000 and result.unsealed == 0
    database.dispose()
    with psycopg.connect(conninfo(generated.url)) as connection:
        for (payload,) in connection.execute(
            "SELECT payload FROM audit_event ORDER BY random() LIMIT 300"
        ):
            assert canonical_json(json.loads(payload)) == payload


def test_generated_clients_find_their_children_through_the_api(
    generated: Generated, tmp_path: Path
) -> None:
    """An LA finds the advice on the children it asked about (unless consent now refuses),
    and a provider its work list, as the search benchmark will ask."""
    with psycopg.connect(conninfo(generated.url)) as connection:
        children = connection.execute(
            "SELECT DISTINCT p.nhs_number, lower(o.ods) FROM document_reference d "
            "JOIN patient p ON p.id = d.patient_id JOIN task t ON t.id = d.task_id "
            "JOIN organisation o ON o.id = t.requester_id "
            "WHERE d.doc_type = 'health-advice' ORDER BY 1 LIMIT 40"
        ).fetchall()
        owners = connection.execute(
            "SELECT o.ods, t.status, count(*) FROM task t JOIN organisation o "
            "ON o.id = t.owner_id GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 5"
        ).fetchall()
    with served(generated, tmp_path / "var") as (client, _database):
        headers: dict[str, dict[str, str]] = {}
        found = 0
        for nhs_number, la in children:
            headers.setdefault(la, bearer(client, f"bench-{la}", generated))
            query = urlencode({"patient.identifier": f"{NHS_NUMBER_SYSTEM}|{nhs_number}"})
            response = client.get(f"/fhir/DocumentReference?{query}", headers=headers[la])
            assert response.status_code == 200
            found += response.get_json()["total"] > 0
        assert found >= 0.8 * len(children)
        for ods, status, count in owners:
            as_owner = bearer(client, f"bench-{ods.lower()}", generated)
            query = urlencode({"owner": f"{ODS_SYSTEM}|{ods}", "status": status})
            response = client.get(f"/fhir/Task?{query}", headers=as_owner)
            assert response.status_code == 200
            assert response.get_json()["total"] == count


def test_growing_keeps_the_children_and_continues_the_chain(
    database_factory: DatabaseFactory,
) -> None:
    """A second run grows the same database: the first run's children stay as they were,
    new ones follow, and the AuditEvents it adds seal onto the same chain."""
    if not PG_URL:
        pytest.skip("EXCHANGE_TEST_DATABASE_URL is not set: the generator needs PostgreSQL")
    url = database_factory.create("postgresql")
    key = ECKey.generate_key("P-256", parameters={"kid": "grow", "alg": "ES256"})
    jwks = public_jwks(key)
    generate(url, 0.0001, 0.00001, jwks=jwks, until=UNTIL, say=lambda _: None)
    with psycopg.connect(conninfo(url)) as connection:
        before = connection.execute("SELECT id, nhs_number FROM patient ORDER BY 2").fetchall()
    grown = generate(url, 0.0002, 0.00002, jwks=jwks, until=UNTIL, say=lambda _: None)
    assert (grown.patients, grown.audit_events) == (200, 5_000)
    assert "organisation" not in grown.rows  # the world was registered once
    with psycopg.connect(conninfo(url)) as connection:
        after = connection.execute("SELECT id, nhs_number FROM patient ORDER BY 2").fetchall()
    assert set(before) < set(after) and len(after) == 400
    database = Database(url)
    try:
        with database.transaction() as session:
            result = verify_chain(session)
        assert result.ok and result.checked == 10_000, result.problem
    finally:
        database.dispose()
