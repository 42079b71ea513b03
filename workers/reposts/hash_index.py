"""Stored PDQ frame hashes and their multi-index-hashing lookup.

A stored frame has its whole-frame and centre hashes (``pdq``, ``centre``) and
any region hashes (``regions``, run together; NULL on rows from before
migration 0009, which match by the two). Each stored hash has 16 rows in ``frame_hash_chunks`` (chunk position and
16-bit value, see ``workers.reposts.matching``). Looking up the hashes near a
query probes that table's primary key for each chunk's value and its
one-bit neighbours, then checks the exact distance of the few rows found:
the work grows with the number of near-ish hashes, not with the number
stored (bench: ``bench/frame_hash_lookup.py``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

import numpy as np
from sqlalchemy import delete, insert, select, text
from sqlalchemy.orm import Session

from workers.reposts.hashing import FrameHash
from workers.reposts.matching import MAX_DISTANCE, MIN_QUALITY, distances, index_keys, probe_keys
from workers.storage.db import batches
from workers.storage.models import FrameHash as FrameHashRow
from workers.storage.models import FrameHashChunk, Video

_PG_REPOST_LOCK = 0x7474_7270  # "ttrp": serialises repost linking on Postgres


def lock_linking(session: Session, video: Video) -> None:
    """Serialise "look up earlier videos, then store this one's hashes" across workers until
    the transaction ends, so that of two copies arriving together the later one finds the
    first. Postgres: an advisory lock; SQLite: taking the write lock now (one writer at a time)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_REPOST_LOCK})
    else:
        session.execute(text("UPDATE videos SET id = id WHERE id = :id"), {"id": video.id})


def store_hashes(session: Session, video_id: int, hashes: Sequence[FrameHash]) -> None:
    """Replace the video's stored hashes (good-quality frames only: the others never match)."""
    session.execute(delete(FrameHashRow).where(FrameHashRow.video_id == video_id))
    kept = [h for h in hashes if h.quality >= MIN_QUALITY]
    if not kept:
        return
    rows = [
        FrameHashRow(
            video_id=video_id,
            frame_index=h.index,
            timestamp=h.timestamp,
            quality=h.quality,
            pdq=h.pdq,
            centre=h.centre,
            regions="".join(h.regions) or None,
            chroma=h.chroma,
        )
        for h in kept
    ]
    session.add_all(rows)
    session.flush()
    entries = [{"chunk": key, "frame_hash_id": row.id} for row in rows for key in index_keys(*_hashes(row))]
    session.execute(insert(FrameHashChunk), entries)


def _hashes(row) -> tuple[str, ...]:
    """A stored frame's hashes: whole frame, centre, regions."""
    more = row.regions or ""
    return row.pdq, row.centre, *(more[i : i + 64] for i in range(0, len(more), 64))


def has_hashes(session: Session, video_id: int) -> bool:
    return session.scalar(select(FrameHashRow.id).where(FrameHashRow.video_id == video_id).limit(1)) is not None


def video_hashes(session: Session, video_ids: Iterable[int]) -> dict[int, list[tuple]]:
    """Video id -> its frames as ``workers.reposts.matching`` compares them (chroma, hashes ...), in frame order."""
    out: dict[int, list[tuple]] = defaultdict(list)
    ids = list(video_ids)
    for batch in batches(ids):
        rows = session.execute(
            select(FrameHashRow.video_id, FrameHashRow.chroma, FrameHashRow.pdq, FrameHashRow.centre, FrameHashRow.regions)
            .where(FrameHashRow.video_id.in_(batch))
            .order_by(FrameHashRow.video_id, FrameHashRow.frame_index)
        )
        for row in rows:
            out[row.video_id].append((row.chroma, *_hashes(row)))
    return dict(out)


def near_frames(session: Session, queries: Sequence[str], max_distance: int = MAX_DISTANCE) -> dict[int, int]:
    """Stored frames with a hash within ``max_distance`` of any query hash: frame hash id -> video id.
    Probes the chunk index (never scans the stored hashes), then checks exact distances."""
    keys = sorted({k for q in queries for k in probe_keys(q)})
    found: set[int] = set()
    for batch in batches(keys):
        found.update(session.scalars(select(FrameHashChunk.frame_hash_id).where(FrameHashChunk.chunk.in_(batch))))
    near: dict[int, int] = {}
    ids = sorted(found)
    for batch in batches(ids):
        rows = session.execute(
            select(FrameHashRow.id, FrameHashRow.video_id, FrameHashRow.pdq, FrameHashRow.centre, FrameHashRow.regions).where(
                FrameHashRow.id.in_(batch)
            )
        ).all()
        if not rows:
            continue
        stored = [_hashes(r) for r in rows]
        close = (distances(queries, [h for hs in stored for h in hs]) <= max_distance).any(axis=0)
        owners = np.repeat(np.arange(len(rows)), [len(hs) for hs in stored])
        hit = np.zeros(len(rows), bool)
        hit[owners[close]] = True
        near.update((r.id, r.video_id) for r, ok in zip(rows, hit, strict=True) if ok)
    return near
