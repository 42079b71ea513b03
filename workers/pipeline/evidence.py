"""Evidence thumbnails: the best frame of each positive verdict, as a JPEG in
the media store (kept after the video itself is deleted), for alerts and
reviewers. Used by the pipeline's verdict stage and by the in-process scan."""

from __future__ import annotations

from typing import Iterable, Sequence

import cv2
import numpy as np

from workers.detect.scoring import TargetOutcome
from workers.images import jpeg_thumbnail
from workers.pipeline.media import MediaStore, evidence_key
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
