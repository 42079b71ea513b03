"""Watches, alerts, repost links; one row per platform video.

- ``watches``: sources scraped on a schedule by celery beat;
- ``alerts``: one row per (video, target), whatever happens to its delivery;
- ``videos.duplicate_of``: the earlier video with the same content (a repost);
- ``ix_videos_platform_id`` becomes unique, so that a video a watch already
  knows cannot be enqueued again (rows that would break it, which no release
  wrote, lose their platform id first).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: Union[str, Sequence[str], None] = "0001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # SQLite adds a foreign key to an existing table only inline (batch mode's
        # copy, drop and rename would cascade the drop into detections).
        op.execute("ALTER TABLE videos ADD COLUMN duplicate_of INTEGER REFERENCES videos (id)")
    else:
        op.add_column("videos", sa.Column("duplicate_of", sa.Integer(), nullable=True))
        op.create_foreign_key("videos_duplicate_of_fkey", "videos", "videos", ["duplicate_of"], ["id"])
    op.create_index("ix_videos_duplicate_of", "videos", ["duplicate_of"])

    op.execute(
        "UPDATE videos SET platform_id = NULL WHERE platform_id IS NOT NULL AND id NOT IN "
        "(SELECT keep FROM (SELECT MIN(id) AS keep FROM videos WHERE platform_id IS NOT NULL "
        "GROUP BY platform, platform_id) AS firsts)"
    )
    op.drop_index("ix_videos_platform_id", table_name="videos")
    op.create_index("ix_videos_platform_id", "videos", ["platform", "platform_id"], unique=True)

    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("video_id", sa.Integer(), nullable=False),
        sa.Column("target_name", sa.String(length=64), nullable=False),
        sa.Column("detection_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("channels", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["video_id"], ["videos.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["detection_id"], ["detections.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("video_id", "target_name", name="uq_alert_video_target"),
    )
    op.create_index("ix_alerts_video_id", "alerts", ["video_id"])
    op.create_index("ix_alerts_target_status", "alerts", ["target_name", "status"])

    op.create_table(
        "watches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("targets", sa.JSON(), nullable=False),
        sa.Column("every_seconds", sa.Float(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("last_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_run_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_listed", sa.Integer(), nullable=True),
        sa.Column("last_enqueued", sa.Integer(), nullable=True),
        sa.Column("last_warnings", sa.JSON(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_watches_next_run_at", "watches", ["next_run_at"])


def downgrade() -> None:
    op.drop_table("watches")
    op.drop_table("alerts")
    op.drop_index("ix_videos_platform_id", table_name="videos")
    op.create_index("ix_videos_platform_id", "videos", ["platform", "platform_id"])
    op.drop_index("ix_videos_duplicate_of", table_name="videos")
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE videos DROP COLUMN duplicate_of")  # SQLite >= 3.35
    else:
        op.drop_column("videos", "duplicate_of")
