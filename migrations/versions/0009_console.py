"""The console: server-side sessions, TOTP replay protection, IG reviews of flagged audit
events, and audit verification runs started from the console.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
BIGKEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("console_user") as batch:
        batch.add_column(sa.Column("totp_last_step", sa.BigInteger(), nullable=True))
    op.create_table(
        "console_session",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("pending_totp_secret", sa.String(64), nullable=True),
        sa.Column("created", TS, nullable=False),
        sa.Column("last_seen", TS, nullable=False),
        sa.Column("ended", TS, nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["console_user.id"], name="fk_console_session_user_id_console_user"),
        sa.PrimaryKeyConstraint("token_hash", name="pk_console_session"),
    )
    op.create_index("ix_console_session_user_id", "console_session", ["user_id"])
    op.create_table(
        "audit_review",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("organisation", sa.String(32), nullable=False),
        sa.Column("reviewer", sa.String(256), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("reviewed", TS, nullable=False),
        sa.ForeignKeyConstraint(["event_id"], ["audit_event.event_id"], name="fk_audit_review_event_id_audit_event"),
        sa.PrimaryKeyConstraint("id", name="pk_audit_review"),
        sa.UniqueConstraint("event_id", "organisation", name="uq_audit_review_event_id_organisation"),
    )
    op.create_table(
        "audit_verification",
        sa.Column("id", BIGKEY, autoincrement=True, nullable=False),
        sa.Column("started", TS, nullable=False),
        sa.Column("started_by", sa.String(256), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("checked", sa.BigInteger(), nullable=False),
        sa.Column("heartbeat", TS, nullable=False),
        sa.Column("finished", TS, nullable=True),
        sa.Column("last_sequence", sa.BigInteger(), nullable=True),
        sa.Column("broken_sequence", sa.BigInteger(), nullable=True),
        sa.Column("problem", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_audit_verification"),
    )


def downgrade() -> None:
    op.drop_table("audit_verification")
    op.drop_table("audit_review")
    op.drop_index("ix_console_session_user_id", "console_session")
    op.drop_table("console_session")
    with op.batch_alter_table("console_user") as batch:
        batch.drop_column("totp_last_step")
