"""DocumentReference: the metadata of health-advice documents.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    op.create_table(
        "document_reference",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("custodian_id", sa.Uuid(), nullable=False),
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.Column("binary_id", sa.Uuid(), nullable=False),
        sa.Column("doc_type", sa.String(64), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("date", TS, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("last_updated", TS, nullable=False),
        sa.Column("resource", JSON, nullable=False),
        sa.ForeignKeyConstraint(["patient_id"], ["patient.id"], name="fk_document_reference_patient_id_patient"),
        sa.ForeignKeyConstraint(["custodian_id"], ["organisation.id"], name="fk_document_reference_custodian_id_organisation"),
        sa.ForeignKeyConstraint(["task_id"], ["task.id"], name="fk_document_reference_task_id_task"),
        sa.ForeignKeyConstraint(["binary_id"], ["binary.id"], name="fk_document_reference_binary_id_binary"),
        sa.PrimaryKeyConstraint("id", name="pk_document_reference"),
    )
    op.create_index("ix_document_reference_patient_id", "document_reference", ["patient_id"])
    op.create_index("ix_document_reference_custodian_id", "document_reference", ["custodian_id"])
    op.create_index("ix_document_reference_task_id", "document_reference", ["task_id"])


def downgrade() -> None:
    op.drop_table("document_reference")
