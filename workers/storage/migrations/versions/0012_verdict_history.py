"""Current and superseded verdicts, and reviews that outlive reruns (issue 29, points 1-2).

- ``ix_detections_video_target`` on detections (video_id, target_name, created_at): what finds
  each (video, target)'s newest row (its current verdict) and its reviews across target versions.
  No other change: reruns now update a version's row in place, so reviews keep their detection.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from typing import Sequence, Union

from alembic import op

revision: str = "0012"
down_revision: Union[str, Sequence[str], None] = "0011"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_index("ix_detections_video_target", "detections", ["video_id", "target_name", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_detections_video_target", table_name="detections")
