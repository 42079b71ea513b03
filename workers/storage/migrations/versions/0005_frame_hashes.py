"""Perceptual frame hashes for repost matching.

- ``frame_hashes``: the PDQ hashes (whole frame, centre), quality and mean chromaticity of each sampled frame;
- ``frame_hash_chunks``: its 16 multi-index-hashing entries (chunk position
  and value -> frame hash), the index a lookup probes instead of scanning;
- ``videos.duplicate_match``: how strongly a repost matches its original.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: Union[str, Sequence[str], None] = "0004"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column("videos", sa.Column("duplicate_match", sa.Float(), nullable=True))
    op.create_table(
        "frame_hashes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("video_id", sa.Integer(), nullable=False),
        sa.Column("frame_index", sa.Integer(), nullable=False),
        sa.Column("timestamp", sa.Float(), nullable=False),
        sa.Column("quality", sa.Integer(), nullable=False),
        sa.Column("chroma", sa.Integer(), nullable=False),
        sa.Column("pdq", sa.String(length=64), nullable=False),
        sa.Column("centre", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["video_id"], ["videos.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_frame_hashes_video_id", "frame_hashes", ["video_id"])
    op.create_table(
        "frame_hash_chunks",
        sa.Column("chunk", sa.Integer(), nullable=False),
        sa.Column("frame_hash_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["frame_hash_id"], ["frame_hashes.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("chunk", "frame_hash_id"),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_frame_hash_chunks_frame_hash_id", "frame_hash_chunks", ["frame_hash_id"])


def downgrade() -> None:
    op.drop_table("frame_hash_chunks")
    op.drop_table("frame_hashes")
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE videos DROP COLUMN duplicate_match")  # SQLite >= 3.35
    else:
        op.drop_column("videos", "duplicate_match")
