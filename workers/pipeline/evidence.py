"""Evidence thumbnails: the best frame of each positive verdict, as a JPEG in
the media store (kept after the video itself is deleted), for alerts and
reviewers. Used by the pipeline's verdict stage and by the in-process scan."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np

from workers.detect.scoring import TargetOutcome
from workers.images import jpeg_thumbnail
from workers.pipeline.media import MediaStore, evidence_key
from workers.sanitize import safe_name
from workers.video.sampling import Frame

THUMBNAIL_SIDE = 640


def evidence_jpeg(image: np.ndarray, box: Sequence[int] | None = None, max_side: int = THUMBNAIL_SIDE) -> bytes:
    """JPEG of an RGB frame, scaled to ``max_side``, with the face ``box``
    (top, right, bottom, left) outlined when there is one."""
    if box is not None:
        image = image.copy()
        top, right, bottom, left = (int(v) for v in box)
        thickness = max(2, round(max(image.shape[:2]) / 300))
        cv2.rectangle(image, (left, top), (right, bottom), (0, 220, 0), thickness)
    return jpeg_thumbnail(image, max_side)


def save_evidence(
    store: MediaStore, media: str | int, outcomes: Iterable[TargetOutcome], frames: Sequence[Frame]
) -> dict[str, str]:
    """Write a thumbnail for every positive outcome of the video named ``media`` in the store
    (``media_id``); return target name -> media key."""
    by_index = {f.index: f for f in frames}
    keys: dict[str, str] = {}
    for outcome in outcomes:
        best = outcome.verdict.best
        if not outcome.verdict.positive or best is None or best.index not in by_index:
            continue
        key = evidence_key(media, outcome.target.name, outcome.target.version)
        store.put(key, evidence_jpeg(by_index[best.index].image, best.box))
        keys[outcome.target.name] = key
    return keys


def evidence_file_name(video_id: int, target_name: str, timestamp: float | None) -> str:
    """``12-trump-at-3.0s.jpg``: the video, the target and where in the video the frame is."""
    when = f"-at-{timestamp:.1f}s" if timestamp is not None else ""
    return f"{video_id}-{safe_name(target_name)}{when}.jpg"


def export_evidence(store: MediaStore, video_id: int, detections: Iterable, out_dir: Path) -> list[Path]:
    """Copy the evidence thumbnails of ``detections`` (rows with ``evidence_key``,
    ``target_name``, ``best_timestamp``) into ``out_dir`` as ordinary files of the user."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for d in detections:
        if not d.evidence_key:
            continue
        path = out_dir / evidence_file_name(video_id, d.target_name, d.best_timestamp)
        path.write_bytes(store.get(d.evidence_key))
        written.append(path)
    return written
