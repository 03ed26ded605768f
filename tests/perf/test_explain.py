"""Every hot query uses an index (`quality.md`: index-backed, no sequential scans, checked
with EXPLAIN), on PostgreSQL, over a generated national dataset.

The SQL is not written here: it is captured (`before_cursor_execute`) while real requests go
through the Flask app — a token, a DocumentReference search by NHS number and a read (the
relationship, agreement and consent checks), a Task work list by owner and status, a
Patient read, AuditEvent searches by patient and by organisation — and while the sealer
seals the audit records those requests appended. Each statement is then EXPLAINed with its
own parameters; a sequential scan of any table bigger than `SMALL_TABLE` fails the test,
naming the statement. A query rewritten tomorrow is checked as it is then.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import psycopg
from flask.testing import FlaskClient
from sqlalchemy import event

from bench.generate import conninfo
from exchange.audit.sealer import seal_all
from exchange.db import Database
from tests.perf.conftest import Generated, bearer, served

#: A table this small may be scanned whole: an index would not be cheaper.
SMALL_TABLE = 1_000
NHS_NUMBER = "https://fhir.nhs.uk/Id/nhs-number"
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
EXPLAINABLE = ("SELECT", "INSERT", "UPDATE", "DELETE", "WITH")


@dataclass
class Statement:
    """A statement the service sent, with its parameters, and what it was doing."""

    step: str
    sql: str
    parameters: Any
    plan: dict[str, Any] = field(default_factory=dict)

    def nodes(self) -> Iterator[dict[str, Any]]:
        """Every node of its plan."""
        stack = [self.plan] if self.plan else []
        while stack:
            node = stack.pop()
            yield node
            stack += node.get("Plans", [])

    def indexes(self) -> set[str]:
        """The indexes its plan uses."""
        return {node["Index Name"] for node in self.nodes() if "Index Name" in node}

    def scanned(self) -> set[str]:
        """The tables its plan reads whole."""
        return {node["Relation Name"] for node in self.nodes() if node["Node Type"] == "Seq Scan"}


class Capture:
    """Records the statements the engine sends while a step runs."""

    def __init__(self, database: Database) -> None:
        self.statements: list[Statement] = []
        self.step: str | None = None
        event.listen(database.engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn: Any, _cursor: Any, sql: str, parameters: Any, *_: Any) -> None:
        if self.step is None:
            return
        if isinstance(parameters, (list, tuple)) and parameters and isinstance(parameters[0], dict):
            parameters = parameters[0]  # executemany: one row's parameters plan the same
        self.statements.append(Statement(self.step, sql, parameters))

    @contextmanager
    def during(self, step: str) -> Iterator[None]:
        """Capture what `step` sends."""
        self.step = step
        try:
            yield
        finally:
            self.step = None


def _one(connection: psycopg.Connection[Any], sql: str, parameters: Any = None) -> Any:
    row = connection.execute(sql, parameters or None).fetchone()
    assert row is not None, sql
    return row


def _get(client: FlaskClient, path: str, headers: dict[str, str], **query: str) -> Any:
    response = client.get(f"{path}?{urlencode(query)}" if query else path, headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


@dataclass(frozen=True)
class Subjects:
    """What the requests ask for: an LA's child with advice it may read, and a provider's
    open work list."""

    document_id: str
    patient_id: str
    nhs_number: str
    la: str
    task_id: str
    owner: str
    status: str


def _subjects(url: str) -> Subjects:
    # Test subjects, not the service's queries.
    with psycopg.connect(conninfo(url)) as connection:
        document = _one(
            connection,
            "SELECT d.id, p.id, p.nhs_number, lower(o.ods) FROM document_reference d "
            "JOIN patient p ON p.id = d.patient_id JOIN task t ON t.id = d.task_id "
            "JOIN organisation o ON o.id = t.requester_id "
            "WHERE d.doc_type = 'health-advice' AND NOT EXISTS "
            "(SELECT 1 FROM consent c WHERE c.patient_id = p.id AND c.status <> 'active') "
            "ORDER BY d.date DESC LIMIT 1",
        )
        task = _one(
            connection,
            "SELECT t.id, o.ods, t.status FROM task t JOIN organisation o ON o.id = t.owner_id "
            "WHERE o.role = 'provider' ORDER BY t.authored_on DESC LIMIT 1",
        )
    return Subjects(*(str(value) for value in (*document, *task)))


def _exercise(generated: Generated, data_dir: Path, subjects: Subjects) -> list[Statement]:
    """Send the hot requests through the app; the statements each sent."""
    with served(generated, data_dir) as (client, database):
        capture = Capture(database)
        with capture.during("token request"):
            as_la = bearer(client, f"bench-{subjects.la}", generated)
        as_provider = bearer(client, f"bench-{subjects.owner.lower()}", generated)
        with capture.during("DocumentReference search by NHS number"):
            identifier = {"patient.identifier": f"{NHS_NUMBER}|{subjects.nhs_number}"}
            found = _get(client, "/fhir/DocumentReference", as_la, **identifier)
        assert found["total"] >= 1, "the generated LA may read its child's advice"
        with capture.during("DocumentReference read"):
            _get(client, f"/fhir/DocumentReference/{subjects.document_id}", as_la)
        with capture.during("Task search by owner and status"):
            owner = f"{ODS}|{subjects.owner}"
            work = _get(client, "/fhir/Task", as_provider, owner=owner, status=subjects.status)
        assert work["total"] >= 1
        with capture.during("Task read"):
            _get(client, f"/fhir/Task/{subjects.task_id}", as_provider)
        with capture.during("Patient read"):
            _get(client, f"/fhir/Patient/{subjects.patient_id}", as_la)
        with capture.during("AuditEvent search by patient"):
            patient = f"Patient/{subjects.patient_id}"
            assert _get(client, "/fhir/AuditEvent", as_la, patient=patient)["total"] >= 1
        with capture.during("AuditEvent search by organisation"):
            _get(client, "/fhir/AuditEvent", as_la, date="ge2026-01-01")
        with capture.during("audit seal"):
            assert seal_all(database) > 0
    return capture.statements


def _explain(url: str, statements: list[Statement]) -> dict[str, float]:
    """Plan every statement with its parameters; the schema's table sizes."""
    with psycopg.connect(conninfo(url)) as connection:
        for statement in statements:
            if not statement.sql.lstrip().upper().startswith(EXPLAINABLE):
                continue
            row = _one(connection, f"EXPLAIN (FORMAT JSON) {statement.sql}", statement.parameters)
            plan = json.loads(row[0]) if isinstance(row[0], str) else row[0]
            statement.plan = plan[0]["Plan"]
            connection.rollback()
        return {
            name: float(rows)
            for name, rows in connection.execute(
                "SELECT c.relname, c.reltuples FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = current_schema() AND c.relkind = 'r'"
            )
        }


#: The tables each step must have read: the hot query is there, whatever its SQL.
HOT_TABLES = {
    "DocumentReference search by NHS number": (
        "access_token", "document_reference", "patient", "task_party", "consent",
        "agreement_party", "audit_event",
    ),
    "DocumentReference read": ("task_party", "agreement_party", "consent"),
    # The caller's own work list: taking part is implied (tasks_of), only task is read.
    "Task search by owner and status": ("task",),
    "Task read": ("task_party",),
    "Patient read": ("patient_access",),
    "AuditEvent search by patient": ("audit_event",),
    "AuditEvent search by organisation": ("audit_event",),
    "audit seal": ("audit_event",),
}  # fmt: skip


def test_every_hot_query_uses_an_index(generated: Generated, tmp_path: Path) -> None:
    statements = _exercise(generated, tmp_path / "var", _subjects(generated.url))
    sizes = _explain(generated.url, statements)
    for step, tables in HOT_TABLES.items():
        sent = " ".join(s.sql for s in statements if s.step == step)
        for table in tables:
            assert table in sent, f"{step} never read {table}"
    for statement in statements:  # shown with -rP: what each step's queries use
        if statement.plan:
            print(f"{statement.step}: {sorted(statement.indexes())} {statement.sql[:90]!r}")
    scans = [
        f"{statement.step}: {sorted(big)} in\n{statement.sql}"
        for statement in statements
        if (big := {t for t in statement.scanned() if sizes.get(t, 0) >= SMALL_TABLE})
    ]
    assert not scans, "sequential scans of large tables:\n\n" + "\n\n".join(scans)
