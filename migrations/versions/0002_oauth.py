"""OAuth: access tokens, client-assertion jti store, token-failure windows; audit entity index.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "access_token",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("jti", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.String(128), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("assertion_jti", sa.String(256), nullable=False),
        sa.Column("issued_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("revoked_at", TS, nullable=True),
        sa.ForeignKeyConstraint(["client_id"], ["client.client_id"], name="fk_access_token_client_id_client"),
        sa.PrimaryKeyConstraint("token_hash", name="pk_access_token"),
        sa.UniqueConstraint("jti", name="uq_access_token_jti"),
    )
    op.create_index("ix_access_token_client_id", "access_token", ["client_id"])
    op.create_index("ix_access_token_expires_at", "access_token", ["expires_at"])
    op.create_table(
        "client_assertion_jti",
        sa.Column("client_id", sa.String(128), nullable=False),
        sa.Column("jti", sa.String(256), nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("client_id", "jti", name="pk_client_assertion_jti"),
    )
    op.create_index("ix_client_assertion_jti_expires_at", "client_assertion_jti", ["expires_at"])
    op.create_table(
        "auth_failure_window",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("claimed_client", sa.String(128), nullable=True),
        sa.Column("error", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(256), nullable=False),
        sa.Column("window_start", TS, nullable=False),
        sa.Column("suppressed", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_auth_failure_window"),
    )
    op.create_index("ix_auth_failure_window_window_start", "auth_failure_window", ["window_start"])
    op.create_table(
        "audit_event_entity",
        sa.Column("audit_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("reference", sa.String(160), nullable=False),
        sa.ForeignKeyConstraint(["audit_id"], ["audit_event.id"], name="fk_audit_event_entity_audit_id_audit_event"),
        sa.PrimaryKeyConstraint("audit_id", "reference", name="pk_audit_event_entity"),
    )
    op.create_index("ix_audit_event_entity_reference", "audit_event_entity", ["reference", "audit_id"])


def downgrade() -> None:
    op.drop_table("audit_event_entity")
    op.drop_table("auth_failure_window")
    op.drop_table("client_assertion_jti")
    op.drop_table("access_token")
