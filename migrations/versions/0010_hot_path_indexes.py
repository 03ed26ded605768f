"""Indexes for the hot paths at national scale (issue 14), found by EXPLAIN on generated data.

- `task_party (organisation_id, role, task_id)` replaces `(organisation_id)`: the read
  decision's relationship check lists the Tasks an organisation takes part in as requester
  or owner; with the role and the Task in the index that list is read from the index alone
  (at 10% of national scale, 142 index pages instead of 4,858 heap pages for an LA).
- `task (owner_id, status, authored_on, id)`: a work list (`Task?owner=&status=`) counted
  from the index alone, and in the order its pages are served (newest first) for a query
  that names the owner by id.

Building them takes a SHARE lock on each table (writes wait) for the length of the build:
on a large deployment, create them CONCURRENTLY by hand first (same names) and this
migration only drops the index the first one replaces.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_task_party_organisation_id_role_task_id",
        "task_party",
        ["organisation_id", "role", "task_id"],
        if_not_exists=True,
    )
    op.drop_index("ix_task_party_organisation_id", "task_party")
    op.create_index(
        "ix_task_owner_id_status_authored_on_id",
        "task",
        ["owner_id", "status", "authored_on", "id"],
        if_not_exists=True,
    )


def downgrade() -> None:
    op.drop_index("ix_task_owner_id_status_authored_on_id", "task")
    op.create_index("ix_task_party_organisation_id", "task_party", ["organisation_id"])
    op.drop_index("ix_task_party_organisation_id_role_task_id", "task_party")
