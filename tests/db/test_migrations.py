"""Migrations: upgrade from empty and downgrade to base work on both databases, the head
file names the newest revision, and the models match what the migrations build."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Integer,
    String,
    Uuid,
    column,
    inspect,
    select,
    table,
)

from exchange import migrate
from exchange.db import make_engine
from exchange.schema import metadata
from tests.conftest import DatabaseFactory

ROOT = Path(__file__).resolve().parents[2]


def test_head_file_names_the_newest_revision() -> None:
    assert (
        ROOT / "migrations" / ".current-alembic-head"
    ).read_text().strip() == migrate.head_revision()


def test_migration_files_are_numbered_in_order() -> None:
    names = sorted(
        p.name for p in (ROOT / "migrations" / "versions").glob("*.py") if p.name != "__init__.py"
    )
    assert names and all(name[:4].isdigit() and name[4] == "_" for name in names)
    assert [int(name[:4]) for name in names] == list(range(1, len(names) + 1))


def test_upgrade_from_empty_and_downgrade_to_base(
    backend: str, database_factory: DatabaseFactory
) -> None:
    url = database_factory.create(backend, migrated=False)
    migrate.upgrade(url)
    assert migrate.current_revision(url) == migrate.head_revision()
    engine = make_engine(url)
    tables = set(inspect(engine).get_table_names())
    assert {
        "organisation",
        "client",
        "agreement",
        "console_user",
        "audit_event",
        "audit_checkpoint",
    } <= tables
    migrate.upgrade(url)  # idempotent
    migrate.downgrade(url, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    migrate.upgrade(url)
    assert migrate.current_revision(url) == migrate.head_revision()
    engine.dispose()


def test_models_match_migrations(backend: str, database_factory: DatabaseFactory) -> None:
    url = database_factory.create(backend)
    engine = make_engine(url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, metadata)
    engine.dispose()
    assert differences == []


def test_0007_gives_each_registrant_its_own_view_and_keeps_history(
    backend: str, database_factory: DatabaseFactory
) -> None:
    """Patients registered before 0007 keep their first registrant's record (with its
    history); later registrants get a view of the identity alone; downgrading restores."""
    url = database_factory.create(backend, migrated=False)
    migrate.upgrade(url, "0006")
    engine = make_engine(url)
    now = datetime(2026, 11, 1, 12, tzinfo=UTC)
    patient_id, first_org, second_org = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    resource = {
        "resourceType": "Patient",
        "id": str(patient_id),
        "meta": {"versionId": "2"},
        "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9000000009"}],
        "birthDate": "2015-03-02",
        "name": [{"given": ["Alex"]}],
    }
    organisation = table(
        "organisation",
        column("id", Uuid()),
        column("ods", String()),
        column("name", String()),
        column("role", String()),
        column("break_glass", Boolean()),
        column("version", Integer()),
        column("created", DateTime(timezone=True)),
        column("updated", DateTime(timezone=True)),
    )
    patient = table(
        "patient",
        column("id", Uuid()),
        column("nhs_number", String()),
        column("birth_date", Date()),
        column("version", Integer()),
        column("last_updated", DateTime(timezone=True)),
        column("resource", JSON()),
    )
    access = table(
        "patient_access",
        column("patient_id", Uuid()),
        column("organisation_id", Uuid()),
        column("relationship", String()),
        column("since", DateTime(timezone=True)),
    )
    with engine.begin() as connection:
        for org, ods in ((first_org, "LA01"), (second_org, "LA02")):
            connection.execute(
                organisation.insert().values(
                    id=org,
                    ods=ods,
                    name=ods,
                    role="la",
                    break_glass=False,
                    version=1,
                    created=now,
                    updated=now,
                )
            )
        connection.execute(
            patient.insert().values(
                id=patient_id,
                nhs_number="9000000009",
                birth_date=date(2015, 3, 2),
                version=2,
                last_updated=now,
                resource=resource,
            )
        )
        for org, since in ((first_org, now), (second_org, now + timedelta(days=1))):
            connection.execute(
                access.insert().values(
                    patient_id=patient_id,
                    organisation_id=org,
                    relationship="registrant",
                    since=since,
                )
            )
    migrate.upgrade(url)
    registration = table(
        "patient_registration",
        column("id", Uuid()),
        column("organisation_id", Uuid()),
        column("first", Boolean()),
        column("version", Integer()),
        column("resource", JSON()),
    )
    with engine.connect() as connection:
        views = {row.organisation_id: row for row in connection.execute(select(registration))}
    first, second = views[first_org], views[second_org]
    assert (first.id, bool(first.first), first.version) == (patient_id, True, 2)
    assert (bool(second.first), second.version) == (False, 1)
    second_view = second.resource
    assert "name" not in second_view and second_view["birthDate"] == "2015-03-02"
    assert second_view["id"] == str(patient_id)
    migrate.downgrade(url, "0006")
    with engine.connect() as connection:
        restored = connection.execute(select(patient.c.version)).one()
    assert restored.version == 2
    engine.dispose()
