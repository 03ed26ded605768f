"""Each registrant's own view of a Patient; review flags on audit events; contested consents.

A Patient now keeps only the NHS number and birth date that every registrant shares; each
organisation that registers it keeps its own name and gender (`access.md`: a registrant
sees only the identity it gave). The first registrant's view takes the patient's id, so
its version history in `resource_version` stays where it was.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")

# The SQLite seal trigger names every column a seal may not change: review_reason joins them.
_AUDIT_FIXED = (
    "id", "event_id", "recorded", "payload", "kind", "action", "outcome", "agent_client_id",
    "agent_user", "agent_org", "custodian_org", "patient_id", "purpose", "break_glass",
    "request_id",
)


def _sqlite_seal_trigger(columns: tuple[str, ...]) -> str:
    return f"""CREATE TRIGGER audit_event_seal_only BEFORE UPDATE ON audit_event
       WHEN OLD.sequence IS NOT NULL OR NEW.sequence IS NULL
         OR NEW.previous_hash IS NULL OR NEW.hash IS NULL
         OR {" OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in columns)}
       BEGIN SELECT RAISE(ABORT, 'audit_event is append-only (UPDATE refused)'); END"""


patient = sa.table(
    "patient",
    sa.column("id", sa.Uuid()),
    sa.column("nhs_number", sa.String()),
    sa.column("birth_date", sa.Date()),
    sa.column("version", sa.Integer()),
    sa.column("last_updated", TS),
    sa.column("resource", JSON),
)
access = sa.table(
    "patient_access",
    sa.column("patient_id", sa.Uuid()),
    sa.column("organisation_id", sa.Uuid()),
    sa.column("relationship", sa.String()),
    sa.column("since", TS),
)
registration = sa.table(
    "patient_registration",
    sa.column("id", sa.Uuid()),
    sa.column("patient_id", sa.Uuid()),
    sa.column("organisation_id", sa.Uuid()),
    sa.column("first", sa.Boolean()),
    sa.column("version", sa.Integer()),
    sa.column("last_updated", TS),
    sa.column("resource", JSON),
)
versions = sa.table(
    "resource_version",
    sa.column("resource_type", sa.String()),
    sa.column("resource_id", sa.Uuid()),
    sa.column("version", sa.Integer()),
    sa.column("last_updated", TS),
    sa.column("resource", JSON),
)


def _instant(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _identity_only(row: Any, since: datetime) -> dict[str, Any]:
    """A later registrant's view: what it is known to have given (the shared identity)."""
    return {
        "resourceType": "Patient",
        "id": str(row.id),
        "meta": {"versionId": "1", "lastUpdated": _instant(since)},
        "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": row.nhs_number}],
        "birthDate": row.birth_date.isoformat(),
    }


def upgrade() -> None:
    op.create_table(
        "patient_registration",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("first", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("last_updated", TS, nullable=False),
        sa.Column("resource", JSON, nullable=False),
        sa.ForeignKeyConstraint(["patient_id"], ["patient.id"], name="fk_patient_registration_patient_id_patient"),
        sa.ForeignKeyConstraint(["organisation_id"], ["organisation.id"],
                                name="fk_patient_registration_organisation_id_organisation"),
        sa.PrimaryKeyConstraint("id", name="pk_patient_registration"),
        sa.UniqueConstraint("patient_id", "organisation_id", name="uq_patient_registration_patient_id_organisation_id"),
    )
    bind = op.get_bind()
    registrants: dict[Any, list[Any]] = {}
    for row in bind.execute(
        sa.select(access.c.patient_id, access.c.organisation_id, access.c.since)
        .where(access.c.relationship == "registrant")
        .order_by(access.c.since, access.c.organisation_id)
    ):
        registrants.setdefault(row.patient_id, []).append(row)
    for row in bind.execute(sa.select(patient)):
        for position, registrant in enumerate(registrants.get(row.id, [])):
            if position == 0:
                bind.execute(registration.insert().values(
                    id=row.id, patient_id=row.id, organisation_id=registrant.organisation_id, first=True,
                    version=row.version, last_updated=row.last_updated, resource=row.resource))
                continue
            view_id = uuid.uuid4()
            view = _identity_only(row, registrant.since)
            bind.execute(registration.insert().values(
                id=view_id, patient_id=row.id, organisation_id=registrant.organisation_id, first=False,
                version=1, last_updated=registrant.since, resource=view))
            bind.execute(versions.insert().values(resource_type="Patient", resource_id=view_id, version=1,
                                                  last_updated=registrant.since, resource=view))
    # Plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+): a batch copy would have to drop a
    # table other tables reference.
    for column in ("resource", "last_updated", "version"):
        op.drop_column("patient", column)

    op.add_column("audit_event", sa.Column("review_reason", sa.String(32), nullable=True))
    op.create_index("ix_audit_event_review_reason", "audit_event", ["review_reason", "recorded"],
                    postgresql_where=sa.text("review_reason IS NOT NULL"),
                    sqlite_where=sa.text("review_reason IS NOT NULL"))
    if bind.dialect.name == "sqlite":
        op.execute("DROP TRIGGER audit_event_seal_only")
        op.execute(_sqlite_seal_trigger((*_AUDIT_FIXED, "review_reason")))

    op.add_column("consent", sa.Column("contested", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    op.drop_column("consent", "contested")
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        op.execute("DROP TRIGGER audit_event_seal_only")
        op.execute(_sqlite_seal_trigger(_AUDIT_FIXED))
    op.drop_index("ix_audit_event_review_reason", "audit_event")
    op.drop_column("audit_event", "review_reason")

    op.add_column("patient", sa.Column("version", sa.Integer(), nullable=True))
    op.add_column("patient", sa.Column("last_updated", TS, nullable=True))
    op.add_column("patient", sa.Column("resource", JSON, nullable=True))
    for row in bind.execute(sa.select(registration).where(registration.c.first.is_(True))):
        bind.execute(patient.update().where(patient.c.id == row.patient_id).values(
            version=row.version, last_updated=row.last_updated, resource=row.resource))
    later = sa.select(registration.c.id).where(registration.c.first.is_(False))
    bind.execute(versions.delete().where(versions.c.resource_type == "Patient", versions.c.resource_id.in_(later)))
    op.drop_table("patient_registration")
    if bind.dialect.name == "postgresql":  # SQLite cannot add NOT NULL to existing columns
        for column in ("version", "last_updated", "resource"):
            op.alter_column("patient", column, nullable=False)
