"""Retention (issue 23): ``videos.pruned_at`` (when its frame data was dropped) and two indexes
on finished videos by age, what ``tiktok-tracker prune`` reads.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: Union[str, Sequence[str], None] = "0016"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column("videos", sa.Column("pruned_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_videos_finished_age", "videos", ["status", "updated_at"])
    op.create_index("ix_videos_unpruned_age", "videos", ["status", "pruned_at", "updated_at"])


def downgrade() -> None:
    op.drop_index("ix_videos_unpruned_age", table_name="videos")
    op.drop_index("ix_videos_finished_age", table_name="videos")
    _drop_column("videos", "pruned_at")


def _drop_column(table: str, column: str) -> None:
    if op.get_bind().dialect.name == "sqlite":  # not batch mode: copying ``videos`` would cascade into detections (0013)
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")  # SQLite >= 3.35
    else:
        op.drop_column(table, column)
