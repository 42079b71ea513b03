"""One row per local source or URL (issue 29, point 10): a unique source identity.

- ``videos.source_key``: the SHA-256 of the video's source (its canonical path or URL,
  ``workers.video_ref.canonical_source``), unique: two ``enqueue`` runs of the same
  source at the same instant cannot both add a row (the lookup before the insert could
  not tell). Backfilled from each row's stored source; of older rows with the same
  source, the first keeps the key and the others are left NULL (they stay as they are).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

import hashlib
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: Union[str, Sequence[str], None] = "0010"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def _key(source: str) -> str:
    """``workers.video_ref.source_key`` as of this revision (frozen here)."""
    return hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()


def upgrade() -> None:
    op.add_column("videos", sa.Column("source_key", sa.String(64), nullable=True))
    bind = op.get_bind()
    videos = sa.table("videos", sa.column("id", sa.Integer), sa.column("source", sa.Text), sa.column("source_key", sa.String))
    seen: set[str] = set()
    for video_id, source in bind.execute(sa.select(videos.c.id, videos.c.source).order_by(videos.c.id)).all():
        key = _key(source or "")
        if source and key not in seen:
            seen.add(key)
            bind.execute(videos.update().where(videos.c.id == video_id).values(source_key=key))
    op.create_index("ix_videos_source_key", "videos", ["source_key"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_videos_source_key", table_name="videos")
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE videos DROP COLUMN source_key")  # SQLite >= 3.35
    else:
        op.drop_column("videos", "source_key")
