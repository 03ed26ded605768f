"""Task outcomes the monthly six-week report counts in SQL: how a request was closed
(statusReason), on which London day, and whether it was ever forwarded.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
LONDON = ZoneInfo("Europe/London")
_REASONS = "https://fhir.send-exchange.example/CodeSystem/task-status-reason"

task = sa.table(
    "task",
    sa.column("id", sa.Uuid()),
    sa.column("status", sa.String()),
    sa.column("completed_on", sa.Date()),
    sa.column("closed_on", sa.Date()),
    sa.column("status_reason", sa.String()),
    sa.column("forwarded", sa.Boolean()),
    sa.column("resource", JSON),
)
party = sa.table("task_party", sa.column("task_id", sa.Uuid()), sa.column("role", sa.String()))


def _day(instant: str | None) -> object:
    if not instant:
        return None
    moment = datetime.fromisoformat(instant.replace("Z", "+00:00"))
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(LONDON).date()


def upgrade() -> None:
    op.add_column("task", sa.Column("closed_on", sa.Date(), nullable=True))
    op.add_column("task", sa.Column("status_reason", sa.String(32), nullable=True))
    op.add_column("task", sa.Column("forwarded", sa.Boolean(), nullable=False, server_default=sa.false()))
    bind = op.get_bind()
    forwarded = {row.task_id for row in bind.execute(sa.select(party.c.task_id).where(party.c.role == "previous-owner"))}
    for row in bind.execute(sa.select(task.c.id, task.c.status, task.c.completed_on, task.c.resource)):
        resource = row.resource or {}
        codes = [c.get("code") for c in (resource.get("statusReason") or {}).get("coding", [])
                 if isinstance(c, dict) and c.get("system") == _REASONS]
        closed = row.completed_on
        if row.status in ("rejected", "cancelled"):
            closed = _day((resource.get("executionPeriod") or {}).get("end") or resource.get("lastModified"))
        bind.execute(task.update().where(task.c.id == row.id).values(
            closed_on=closed, status_reason=codes[0] if codes else None, forwarded=row.id in forwarded))
    op.create_index("ix_task_received_on", "task", ["received_on"])
    op.create_index("ix_task_due_date", "task", ["due_date"])


def downgrade() -> None:
    op.drop_index("ix_task_due_date", "task")
    op.drop_index("ix_task_received_on", "task")
    op.drop_column("task", "forwarded")
    op.drop_column("task", "status_reason")
    op.drop_column("task", "closed_on")
