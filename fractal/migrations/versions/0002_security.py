"""Case-insensitive usernames, admission estimates, measured CPU and the daily CPU ledger.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05
"""

from __future__ import annotations

import unicodedata

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _fold(username: str) -> str:
    # api.credentials.username_key as of this revision (a migration keeps its own copy, so
    # that it means the same whatever the code becomes).
    return unicodedata.normalize("NFKC", username).casefold()


def upgrade() -> None:
    op.add_column("users", sa.Column("username_key", sa.Text(), nullable=True))
    users = sa.table(
        "users",
        sa.column("id", sa.Uuid()),
        sa.column("username", sa.String()),
        sa.column("username_key", sa.Text()),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    connection = op.get_bind()
    taken: set[str] = set()
    rows = connection.execute(
        sa.select(users.c.id, users.c.username).order_by(users.c.created_at, users.c.id)
    )
    for user_id, username in list(rows):
        key = _fold(username)
        if key in taken:
            # An older account already reads the same ("Bob" after "bob"): this one keeps
            # its data but can no longer sign in by that name.
            key = f"{key}#duplicate-{user_id}"
        taken.add(key)
        connection.execute(users.update().where(users.c.id == user_id).values(username_key=key))
    op.alter_column("users", "username_key", nullable=False)
    op.create_unique_constraint("users_username_key_key", "users", ["username_key"])

    op.add_column(
        "tasks",
        sa.Column("estimated_cpu_seconds", sa.Float(), nullable=False, server_default="0"),
    )
    op.add_column(
        "tasks", sa.Column("estimated_bytes", sa.BigInteger(), nullable=False, server_default="0")
    )
    op.add_column("tasks", sa.Column("cpu_seconds", sa.Float(), nullable=True))
    op.alter_column("tasks", "estimated_cpu_seconds", server_default=None)
    op.alter_column("tasks", "estimated_bytes", server_default=None)
    op.add_column(
        "task_chunks",
        sa.Column("cpu_seconds", sa.Float(), nullable=False, server_default="0"),
    )
    op.alter_column("task_chunks", "cpu_seconds", server_default=None)
    op.create_table(
        "cpu_usage",
        sa.Column(
            "user_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("cpu_seconds", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("cpu_usage")
    op.drop_column("task_chunks", "cpu_seconds")
    op.drop_column("tasks", "cpu_seconds")
    op.drop_column("tasks", "estimated_bytes")
    op.drop_column("tasks", "estimated_cpu_seconds")
    op.drop_constraint("users_username_key_key", "users", type_="unique")
    op.drop_column("users", "username_key")
