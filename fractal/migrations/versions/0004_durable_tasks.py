"""Durable tasks: when a task's workflow was started, when its cancel was requested.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tasks", sa.Column("workflow_started_at", sa.DateTime(timezone=True)))
    op.add_column("tasks", sa.Column("cancel_requested_at", sa.DateTime(timezone=True)))
    # A task that left `queued` had its workflow started.
    op.execute(
        "UPDATE tasks SET workflow_started_at = COALESCE(started_at, created_at) "
        "WHERE state <> 'queued'"
    )


def downgrade() -> None:
    op.drop_column("tasks", "cancel_requested_at")
    op.drop_column("tasks", "workflow_started_at")
