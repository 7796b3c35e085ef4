"""A poster image per task, written by the render beside the video.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tasks", sa.Column("poster_key", sa.String(255), nullable=True))


def downgrade() -> None:
    op.drop_column("tasks", "poster_key")
