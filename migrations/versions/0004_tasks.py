"""Advice requests (Task) and their parties.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    op.create_table(
        "task",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("patient_id", sa.Uuid(), nullable=False),
        sa.Column("requester_id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("task_type", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(32), nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("authored_on", TS, nullable=False),
        sa.Column("received_on", sa.Date(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("completed_on", sa.Date(), nullable=True),
        sa.Column("clock_exception", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("last_updated", TS, nullable=False),
        sa.Column("resource", JSON, nullable=False),
        sa.ForeignKeyConstraint(["patient_id"], ["patient.id"], name="fk_task_patient_id_patient"),
        sa.ForeignKeyConstraint(["requester_id"], ["organisation.id"], name="fk_task_requester_id_organisation"),
        sa.ForeignKeyConstraint(["owner_id"], ["organisation.id"], name="fk_task_owner_id_organisation"),
        sa.PrimaryKeyConstraint("id", name="pk_task"),
    )
    op.create_index("ix_task_patient_id", "task", ["patient_id"])
    op.create_index("ix_task_owner_id_status_due_date", "task", ["owner_id", "status", "due_date"])
    op.create_index("ix_task_requester_id_status_due_date", "task", ["requester_id", "status", "due_date"])
    op.create_index("ix_task_status_due_date", "task", ["status", "due_date"])
    op.create_table(
        "task_party",
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.ForeignKeyConstraint(["task_id"], ["task.id"], name="fk_task_party_task_id_task"),
        sa.ForeignKeyConstraint(["organisation_id"], ["organisation.id"], name="fk_task_party_organisation_id_organisation"),
        sa.PrimaryKeyConstraint("task_id", "organisation_id", "role", name="pk_task_party"),
    )
    op.create_index("ix_task_party_organisation_id", "task_party", ["organisation_id"])


def downgrade() -> None:
    op.drop_table("task_party")
    op.drop_table("task")
