"""Registry and audit trail.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
BIGKEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)

# Columns a seal may not change (everything but sequence, previous_hash, hash).
_AUDIT_FIXED = (
    "id", "event_id", "recorded", "payload", "kind", "action", "outcome", "agent_client_id",
    "agent_user", "agent_org", "custodian_org", "patient_id", "purpose", "break_glass",
    "request_id",
)

_PG_GUARD = """
CREATE FUNCTION audit_event_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- The only change ever allowed: sealing an unsealed row, once, leaving its content as is.
    IF TG_OP = 'UPDATE'
       AND OLD.sequence IS NULL AND NEW.sequence IS NOT NULL
       AND NEW.previous_hash IS NOT NULL AND NEW.hash IS NOT NULL
       AND (to_jsonb(NEW) - 'sequence' - 'previous_hash' - 'hash')
           = (to_jsonb(OLD) - 'sequence' - 'previous_hash' - 'hash') THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit_event is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON audit_event
    FOR EACH ROW EXECUTE FUNCTION audit_event_guard();
CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON audit_event
    FOR EACH STATEMENT EXECUTE FUNCTION audit_event_guard();
CREATE FUNCTION audit_checkpoint_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_checkpoint is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_checkpoint_append_only BEFORE UPDATE OR DELETE ON audit_checkpoint
    FOR EACH ROW EXECUTE FUNCTION audit_checkpoint_guard();
CREATE TRIGGER audit_checkpoint_no_truncate BEFORE TRUNCATE ON audit_checkpoint
    FOR EACH STATEMENT EXECUTE FUNCTION audit_checkpoint_guard();
"""

_SQLITE_GUARD = [
    """CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_event
       BEGIN SELECT RAISE(ABORT, 'audit_event is append-only (DELETE refused)'); END""",
    f"""CREATE TRIGGER audit_event_seal_only BEFORE UPDATE ON audit_event
       WHEN OLD.sequence IS NOT NULL OR NEW.sequence IS NULL
         OR NEW.previous_hash IS NULL OR NEW.hash IS NULL
         OR {" OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in _AUDIT_FIXED)}
       BEGIN SELECT RAISE(ABORT, 'audit_event is append-only (UPDATE refused)'); END""",
    """CREATE TRIGGER audit_checkpoint_no_delete BEFORE DELETE ON audit_checkpoint
       BEGIN SELECT RAISE(ABORT, 'audit_checkpoint is append-only (DELETE refused)'); END""",
    """CREATE TRIGGER audit_checkpoint_no_update BEFORE UPDATE ON audit_checkpoint
       BEGIN SELECT RAISE(ABORT, 'audit_checkpoint is append-only (UPDATE refused)'); END""",
]


def upgrade() -> None:
    op.create_table(
        "organisation",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("ods", sa.String(32), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("commissioner_ods", sa.String(32), nullable=True),
        sa.Column("break_glass", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created", TS, nullable=False),
        sa.Column("updated", TS, nullable=False),
        sa.CheckConstraint("role IN ('provider', 'icb', 'la')", name=op.f("ck_organisation_role")),
        sa.PrimaryKeyConstraint("id", name="pk_organisation"),
        sa.UniqueConstraint("ods", name="uq_organisation_ods"),
    )
    op.create_table(
        "client",
        sa.Column("client_id", sa.String(128), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("scopes", JSON, nullable=False),
        sa.Column("jwks", JSON, nullable=True),
        sa.Column("jwks_uri", sa.String(2048), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created", TS, nullable=False),
        sa.Column("updated", TS, nullable=False),
        sa.CheckConstraint("(jwks IS NULL) <> (jwks_uri IS NULL)", name=op.f("ck_client_one_key_source")),
        sa.ForeignKeyConstraint(["organisation_id"], ["organisation.id"], name="fk_client_organisation_id_organisation"),
        sa.PrimaryKeyConstraint("client_id", name="pk_client"),
    )
    op.create_index("ix_client_organisation_id", "client", ["organisation_id"])
    op.create_table(
        "agreement",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("agreement_id", sa.String(128), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("start", sa.Date(), nullable=False),
        sa.Column("end", sa.Date(), nullable=True),
        sa.Column("registered_by", sa.String(256), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created", TS, nullable=False),
        sa.Column("updated", TS, nullable=False),
        sa.CheckConstraint("status IN ('executed', 'terminated', 'revoked')", name=op.f("ck_agreement_status")),
        sa.PrimaryKeyConstraint("id", name="pk_agreement"),
        sa.UniqueConstraint("agreement_id", name="uq_agreement_agreement_id"),
    )
    op.create_table(
        "agreement_party",
        sa.Column("agreement_id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["agreement_id"], ["agreement.id"], name="fk_agreement_party_agreement_id_agreement", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["organisation_id"], ["organisation.id"], name="fk_agreement_party_organisation_id_organisation"),
        sa.PrimaryKeyConstraint("agreement_id", "organisation_id", name="pk_agreement_party"),
    )
    op.create_index("ix_agreement_party_organisation_id", "agreement_party", ["organisation_id"])
    op.create_table(
        "agreement_purpose",
        sa.Column("agreement_id", sa.Uuid(), nullable=False),
        sa.Column("purpose", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(["agreement_id"], ["agreement.id"], name="fk_agreement_purpose_agreement_id_agreement", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("agreement_id", "purpose", name="pk_agreement_purpose"),
    )
    op.create_table(
        "console_user",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("username", sa.String(256), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("roles", JSON, nullable=False),
        sa.Column("password_hash", sa.String(512), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("must_change_password", sa.Boolean(), nullable=False),
        sa.Column("totp_secret", sa.String(512), nullable=True),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", TS, nullable=True),
        sa.Column("created", TS, nullable=False),
        sa.Column("updated", TS, nullable=False),
        sa.ForeignKeyConstraint(["organisation_id"], ["organisation.id"], name="fk_console_user_organisation_id_organisation"),
        sa.PrimaryKeyConstraint("id", name="pk_console_user"),
        sa.UniqueConstraint("username", name="uq_console_user_username"),
    )
    op.create_index("ix_console_user_organisation_id", "console_user", ["organisation_id"])
    op.create_table(
        "audit_event",
        sa.Column("id", BIGKEY, autoincrement=True, nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("recorded", TS, nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=True),
        sa.Column("previous_hash", sa.String(64), nullable=True),
        sa.Column("hash", sa.String(64), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("action", sa.String(1), nullable=False),
        sa.Column("outcome", sa.String(2), nullable=False),
        sa.Column("agent_client_id", sa.String(128), nullable=True),
        sa.Column("agent_user", sa.String(256), nullable=True),
        sa.Column("agent_org", sa.String(32), nullable=True),
        sa.Column("custodian_org", sa.String(32), nullable=True),
        sa.Column("patient_id", sa.Uuid(), nullable=True),
        sa.Column("purpose", sa.String(64), nullable=True),
        sa.Column("break_glass", sa.Boolean(), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_audit_event"),
        sa.UniqueConstraint("event_id", name="uq_audit_event_event_id"),
        sa.UniqueConstraint("sequence", name="uq_audit_event_sequence"),
    )
    op.create_index("ix_audit_event_recorded", "audit_event", ["recorded"])
    op.create_index("ix_audit_event_agent_org_recorded", "audit_event", ["agent_org", "recorded"])
    op.create_index("ix_audit_event_custodian_org_recorded", "audit_event", ["custodian_org", "recorded"])
    op.create_index("ix_audit_event_patient_id_recorded", "audit_event", ["patient_id", "recorded"])
    op.create_index(
        "ix_audit_event_unsealed",
        "audit_event",
        ["id"],
        postgresql_where=sa.text("sequence IS NULL"),
        sqlite_where=sa.text("sequence IS NULL"),
    )
    op.create_table(
        "audit_checkpoint",
        sa.Column("id", BIGKEY, autoincrement=True, nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("created", TS, nullable=False),
        sa.Column("key_id", sa.String(256), nullable=False),
        sa.Column("algorithm", sa.String(32), nullable=False),
        sa.Column("signature", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_checkpoint"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_GUARD)
    else:
        for statement in _SQLITE_GUARD:
            op.execute(statement)


def downgrade() -> None:
    op.drop_table("audit_checkpoint")
    op.drop_table("audit_event")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS audit_event_guard()")
        op.execute("DROP FUNCTION IF EXISTS audit_checkpoint_guard()")
    op.drop_table("console_user")
    op.drop_table("agreement_purpose")
    op.drop_table("agreement_party")
    op.drop_table("agreement")
    op.drop_index("ix_client_organisation_id", table_name="client")
    op.drop_table("client")
    op.drop_table("organisation")
