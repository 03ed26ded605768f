"""Patients, their organisations, consents, and the shared resource version history.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    op.create_table(
        "resource_version",
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("resource_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("last_updated", TS, nullable=False),
        sa.Column("resource", JSON, nullable=False),
        sa.PrimaryKeyConstraint("resource_type", "resource_id", "version", name="pk_resource_version"),
    )
    op.create_table(
        "patient",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("nhs_number", sa.String(10), nullable=False),
        sa.Column("birth_date", sa.Date(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("last_updated", TS, nullable=False),
        sa.Column("resource", JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_patient"),
        sa.UniqueConstraint("nhs_number", name="uq_patient_nhs_number"),
    )
    op.create_table(
        "patient_access",
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("relationship", sa.String(32), nullable=False),
        sa.Column("since", TS, nullable=False),
        sa.ForeignKeyConstraint(["patient_id"], ["patient.id"], name="fk_patient_access_patient_id_patient"),
        sa.ForeignKeyConstraint(["organisation_id"], ["organisation.id"], name="fk_patient_access_organisation_id_organisation"),
        sa.PrimaryKeyConstraint("patient_id", "organisation_id", "relationship", name="pk_patient_access"),
    )
    op.create_index("ix_patient_access_organisation_id", "patient_access", ["organisation_id"])
    op.create_table(
        "consent",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("date_time", TS, nullable=False),
        sa.Column("maker_valid", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("last_updated", TS, nullable=False),
        sa.Column("resource", JSON, nullable=False),
        sa.ForeignKeyConstraint(["patient_id"], ["patient.id"], name="fk_consent_patient_id_patient"),
        sa.ForeignKeyConstraint(["organisation_id"], ["organisation.id"], name="fk_consent_organisation_id_organisation"),
        sa.PrimaryKeyConstraint("id", name="pk_consent"),
    )
    op.create_index("ix_consent_patient_id_date_time", "consent", ["patient_id", "date_time"])


def downgrade() -> None:
    op.drop_table("consent")
    op.drop_table("patient_access")
    op.drop_table("patient")
    op.drop_table("resource_version")
