"""Encrypted document content (Binary).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "binary",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("blob_name", sa.String(32), nullable=False),
        sa.Column("content_type", sa.String(128), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("sha1", sa.LargeBinary(20), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=True),
        sa.Column("key_ref", sa.String(512), nullable=False),
        sa.Column("uploader_id", sa.Uuid(), nullable=False),
        sa.Column("created", TS, nullable=False),
        sa.Column("document_id", sa.Uuid(), nullable=True),
        sa.Column("destroyed", TS, nullable=True),
        sa.ForeignKeyConstraint(["uploader_id"], ["organisation.id"], name="fk_binary_uploader_id_organisation"),
        sa.PrimaryKeyConstraint("id", name="pk_binary"),
        sa.UniqueConstraint("blob_name", name="uq_binary_blob_name"),
    )
    op.create_index("ix_binary_uploader_id", "binary", ["uploader_id"])
    op.create_index("ix_binary_created", "binary", ["created"])
    op.create_index("ix_binary_document_id", "binary", ["document_id"])


def downgrade() -> None:
    op.drop_table("binary")
