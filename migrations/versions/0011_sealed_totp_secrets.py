"""TOTP secrets are stored sealed (`crypto.sealed`: envelope encryption with the key
provider), which is longer than a base32 secret: both columns widen to 1,024 characters.

Secrets enrolled before this revision stay as they are until the person's next sign-in,
which seals them; `exchange keys rotate` seals any left (local keyring).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("console_user") as batch:
        batch.alter_column(
            "totp_secret", type_=sa.String(1024), existing_type=sa.String(512), existing_nullable=True
        )
    with op.batch_alter_table("console_session") as batch:
        batch.alter_column(
            "pending_totp_secret",
            type_=sa.String(1024),
            existing_type=sa.String(64),
            existing_nullable=True,
        )


def downgrade() -> None:
    # The code before this revision reads only plain secrets: sealed ones are cleared, so
    # each of those people enrols an authenticator again at their next sign-in (a sign-in
    # half-way through enrolment starts again).
    op.execute("UPDATE console_session SET pending_totp_secret = NULL")
    op.execute("UPDATE console_user SET totp_secret = NULL WHERE totp_secret LIKE 'sealed-v1.%'")
    with op.batch_alter_table("console_session") as batch:
        batch.alter_column(
            "pending_totp_secret",
            type_=sa.String(64),
            existing_type=sa.String(1024),
            existing_nullable=True,
        )
    with op.batch_alter_table("console_user") as batch:
        batch.alter_column(
            "totp_secret", type_=sa.String(512), existing_type=sa.String(1024), existing_nullable=True
        )
