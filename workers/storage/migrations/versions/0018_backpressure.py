"""Backpressure and history (issue 23): ``watches.last_deferred`` (new videos its last run left for a later
one: the backlog was at its bound), ``watches.expire_after_seconds`` (its videos not started
within this are failed as expired), ``videos.expires_at`` (set from it at submission), and
``ix_videos_created``: arrivals per hour, for the pipeline page's backlog chart.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: Union[str, Sequence[str], None] = "0017"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

COLUMNS = (
    ("watches", sa.Column("last_deferred", sa.Integer(), nullable=False, server_default="0")),
    ("watches", sa.Column("expire_after_seconds", sa.Float(), nullable=True)),
    ("videos", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True)),
)


def upgrade() -> None:
    for table, column in COLUMNS:
        op.add_column(table, column)
    op.create_index("ix_videos_created", "videos", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_videos_created", table_name="videos")
    for table, column in reversed(COLUMNS):
        if op.get_bind().dialect.name == "sqlite":  # not batch mode: copying ``videos`` would cascade into detections (0013)
            op.execute(f"ALTER TABLE {table} DROP COLUMN {column.name}")  # SQLite >= 3.35
        else:
            op.drop_column(table, column.name)
