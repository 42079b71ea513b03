"""Near-duplicate frames: which scores were reused.

- ``frame_scores.reused_from``: the frame index whose score a near-identical
  frame took instead of being scored (NULL: scored itself);
- ``detections.reused_frames``: how many of the scored frames did so.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: Union[str, Sequence[str], None] = "0002"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column("frame_scores", sa.Column("reused_from", sa.Integer(), nullable=True))
    op.add_column("detections", sa.Column("reused_frames", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    for table, column in (("detections", "reused_frames"), ("frame_scores", "reused_from")):
        if op.get_bind().dialect.name == "sqlite":
            # Not batch mode: copying and dropping ``detections`` would cascade into frame_scores.
            op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")  # SQLite >= 3.35
        else:
            op.drop_column(table, column)
