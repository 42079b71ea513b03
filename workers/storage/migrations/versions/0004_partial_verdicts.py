"""Truncated videos: a verdict made from part of the video says so.

- ``detections.partial``: the video decoded to fewer frames than its container
  promised (how many of each: ``videos.meta["decoding"]``).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: Union[str, Sequence[str], None] = "0003"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column("detections", sa.Column("partial", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # Not batch mode: copying and dropping ``detections`` would cascade into frame_scores.
        op.execute("ALTER TABLE detections DROP COLUMN partial")  # SQLite >= 3.35
    else:
        op.drop_column("detections", "partial")
