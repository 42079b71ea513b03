"""Reviews and lasting evidence.

- ``reviews``: a person's verdict on a detection (confirmed / rejected) or on
  one of its frames (target / not_target), who gave it and when;
- ``frame_scores.evidence_key``: the media-store key of a positive frame's
  evidence JPEG (kept after the video is deleted).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: Union[str, Sequence[str], None] = "0005"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "reviews",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("detection_id", sa.Integer(), sa.ForeignKey("detections.id", ondelete="CASCADE"), nullable=False),
        sa.Column("frame_index", sa.Integer(), nullable=True),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("reviewer", sa.String(128), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("target_version", sa.String(32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_reviews_detection_id", "reviews", ["detection_id"])
    op.add_column("frame_scores", sa.Column("evidence_key", sa.Text(), nullable=True))


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE frame_scores DROP COLUMN evidence_key")  # SQLite >= 3.35
    else:
        op.drop_column("frame_scores", "evidence_key")
    op.drop_index("ix_reviews_detection_id", table_name="reviews")
    op.drop_table("reviews")
