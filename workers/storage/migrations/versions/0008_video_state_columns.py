"""A video's state in columns instead of the free-form ``videos.meta``.

``meta`` held, by key, what the stages, the reaper and ``submit`` kept about a
video: its targets and watch, its listed metadata, its media-store key and its
progress. Each becomes a column (the watch id can be filtered in SQL); the
values are carried over, then ``meta`` is dropped:

- ``targets`` (JSON list), ``watch_id`` (indexed), ``ref`` (JSON: the listed ``VideoRef``);
- ``video_key``, ``frames_linked``, ``repost_wait_since`` (was a Unix time), ``requeues``;
- ``promised_frames``, ``decoded_frames``, ``partial`` (was ``meta["decoding"]``; its
  ``broken`` flag only ever made ``partial`` true).

SQLite: columns are added and dropped in place (``ALTER TABLE``, SQLite >= 3.35), never
in batch mode, whose copy, drop and rename of ``videos`` would cascade into detections.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from datetime import datetime, timezone
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: Union[str, Sequence[str], None] = "0007"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

BATCH = 1000



def _columns() -> list:
    """The new columns (made afresh for each use: a column belongs to one table)."""
    return [
        sa.Column("ref", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("targets", sa.JSON(), nullable=False, server_default=sa.text("'[]'")),
        sa.Column("watch_id", sa.Integer(), nullable=True),
        sa.Column("video_key", sa.Text(), nullable=True),
        sa.Column("frames_linked", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("repost_wait_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("requeues", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("promised_frames", sa.Integer(), nullable=True),
        sa.Column("decoded_frames", sa.Integer(), nullable=True),
        sa.Column("partial", sa.Boolean(), nullable=False, server_default=sa.false()),
    ]


NAMES = [c.name for c in _columns()]
# The table as this migration reads and writes it (typed: JSON and times convert on both databases).
videos = sa.table("videos", sa.column("id", sa.Integer()), sa.column("meta", sa.JSON()), *(sa.column(c.name, c.type) for c in _columns()))


def _columns_of(meta: dict) -> dict:
    """The new columns' values of one row's ``meta``."""
    decoding = meta.get("decoding") or {}
    since = meta.get("repost_wait_since")
    watch = meta.get("watch_id")
    return {
        "ref": meta.get("ref") or None,
        "targets": list(meta.get("targets") or []),
        "watch_id": int(watch) if watch is not None else None,
        "video_key": meta.get("video_key") or None,
        "frames_linked": bool(meta.get("frames_linked")),
        "repost_wait_since": datetime.fromtimestamp(float(since), timezone.utc) if since else None,
        "requeues": int(meta.get("requeues") or 0),
        "promised_frames": decoding.get("promised_frames"),
        "decoded_frames": decoding.get("decoded_frames"),
        "partial": bool(decoding.get("partial")),
    }


def _meta_of(row) -> dict:
    """``meta`` as the releases before this one wrote it, from the columns (downgrade)."""
    meta: dict = {"targets": list(row.targets or [])}
    for key in ("watch_id", "video_key", "ref"):
        if getattr(row, key) is not None:
            meta[key] = getattr(row, key)
    if row.frames_linked:
        meta["frames_linked"] = True
    if row.repost_wait_since is not None:
        since = row.repost_wait_since
        meta["repost_wait_since"] = (since if since.tzinfo else since.replace(tzinfo=timezone.utc)).timestamp()
    if row.requeues:
        meta["requeues"] = row.requeues
    if row.promised_frames is not None:
        meta["decoding"] = {"promised_frames": row.promised_frames, "decoded_frames": row.decoded_frames, "partial": bool(row.partial)}
    return meta


def _rewrite(read: list, values) -> None:
    """Page through ``videos`` by id, reading the ``read`` columns, and write ``values(row)`` back."""
    conn = op.get_bind()
    last = 0
    while True:
        rows = conn.execute(sa.select(videos.c.id, *read).where(videos.c.id > last).order_by(videos.c.id).limit(BATCH)).all()
        if not rows:
            return
        # The SET clause is the parameters' column names.
        conn.execute(videos.update().where(videos.c.id == sa.bindparam("row_id")), [{"row_id": row.id, **values(row)} for row in rows])
        last = rows[-1].id


def _drop_column(name: str) -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"ALTER TABLE videos DROP COLUMN {name}")  # SQLite >= 3.35
    else:
        op.drop_column("videos", name)


def upgrade() -> None:
    for column in _columns():
        op.add_column("videos", column)
    op.create_index("ix_videos_watch_id", "videos", ["watch_id"])
    _rewrite([videos.c.meta], lambda row: _columns_of(row.meta or {}))
    _drop_column("meta")


def downgrade() -> None:
    op.add_column("videos", sa.Column("meta", sa.JSON(), nullable=False, server_default=sa.text("'{}'")))
    _rewrite([getattr(videos.c, name) for name in NAMES], lambda row: {"meta": _meta_of(row)})
    op.drop_index("ix_videos_watch_id", table_name="videos")
    for name in NAMES:
        _drop_column(name)
