"""Every sampled frame scored in the first pass, asked for per job and per watch (issue 29, point 4).

- ``videos.all_frames``: ``enqueue --all-frames`` (or its watch's): no early verdict, no reuse.
- ``watches.all_frames``: ``watch add --all-frames``: the videos it queues score every frame.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: Union[str, Sequence[str], None] = "0012"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

TABLES = ("videos", "watches")


def upgrade() -> None:
    for table in TABLES:
        op.add_column(table, sa.Column("all_frames", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    for table in TABLES:
        if op.get_bind().dialect.name == "sqlite":
            # Not batch mode: copying and dropping ``videos`` would cascade into its detections.
            op.execute(f"ALTER TABLE {table} DROP COLUMN all_frames")  # SQLite >= 3.35
        else:
            op.drop_column(table, "all_frames")
