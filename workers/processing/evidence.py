"""Evidence thumbnails: the best frame of each positive verdict, as a JPEG in
the media store (kept after the video itself is deleted), for alerts and
reviewers, and a smaller JPEG of up to ``evidence_frames`` positive frames per
detection (the highest-scoring), so that frames can be reviewed once the video
is gone; face boxes are drawn on them and kept as data in ``frame_scores``,
and the face itself is kept at full resolution (``face_crop``): re-embedded, it
lands within ~0.07 of the scored embedding (a 480 px frame: ~0.3), which is
what face corrections need once the video is deleted.
Part of the per-video core (``workers.processing``): the verdict step of scan, the
pipeline alike."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from workers.detect.scoring import TargetOutcome
from workers.images import jpeg_thumbnail
from workers.media.keys import evidence_face_key, evidence_frame_key, evidence_key
from workers.media.store import MediaStore
from workers.sanitize import safe_name
from workers.verdict import FrameScore
from workers.video.sampling import Frame

if TYPE_CHECKING:
    from workers.storage.models import Detection

THUMBNAIL_SIDE = 640
FRAME_THUMBNAIL_SIDE = 480  # review strip; faces stay large enough to embed again


def evidence_jpeg(image: np.ndarray, box: Sequence[int] | None = None, max_side: int = THUMBNAIL_SIDE) -> bytes:
    """JPEG of an RGB frame, scaled to ``max_side``, with the face ``box``
    (top, right, bottom, left) outlined when there is one."""
    if box is not None:
        image = image.copy()
        top, right, bottom, left = (int(v) for v in box)
        thickness = max(2, round(max(image.shape[:2]) / 300))
        cv2.rectangle(image, (left, top), (right, bottom), (0, 220, 0), thickness)
    return jpeg_thumbnail(image, max_side)


def face_crop(image: np.ndarray, box: Sequence[int]) -> np.ndarray:
    """The face in ``box`` (top, right, bottom, left) with one face-size of margin around it."""
    top, right, bottom, left = (int(v) for v in box)
    margin = max(bottom - top, right - left)
    h, w = image.shape[:2]
    return image[max(0, top - margin) : min(h, bottom + margin), max(0, left - margin) : min(w, right + margin)]


def evidence_scores(outcome: TargetOutcome, per_detection: int) -> list[FrameScore]:
    """The positive frames of a positive outcome kept as evidence: the ``per_detection``
    highest-scoring ones (the best frame first), none for a negative outcome."""
    if not outcome.verdict.positive or per_detection <= 0:
        return []
    threshold = outcome.target.threshold
    positive = [s for s in outcome.scores if s.score >= threshold]
    return sorted(positive, key=lambda s: (-s.score, s.index))[:per_detection]


def evidence_frame_indices(outcomes: Iterable[TargetOutcome], per_detection: int) -> list[int]:
    """Frame indices ``save_evidence`` needs the images of (best frames included)."""
    wanted = set()
    for outcome in outcomes:
        best = outcome.verdict.best
        if outcome.verdict.positive and best is not None:
            wanted.add(best.index)
        wanted.update(s.index for s in evidence_scores(outcome, per_detection))
    return sorted(wanted)


def save_evidence(
    store: MediaStore,
    media: str | int,
    outcomes: Iterable[TargetOutcome],
    frames: Sequence[Frame],
    per_detection: int = 0,
) -> tuple[dict[str, str], dict[str, dict[int, str]]]:
    """Write a thumbnail for every positive outcome of the video named ``media`` in the store
    (``media_id``), and up to ``per_detection`` positive frames' JPEGs; return
    (target name -> best frame's key, target name -> {frame index -> key})."""
    by_index = {f.index: f for f in frames}
    keys: dict[str, str] = {}
    frame_keys: dict[str, dict[int, str]] = {}
    for outcome in outcomes:
        best = outcome.verdict.best
        if not outcome.verdict.positive or best is None or best.index not in by_index:
            continue
        t = outcome.target
        key = evidence_key(media, t.name, t.version)
        store.put(key, evidence_jpeg(by_index[best.index].image, best.box))
        keys[t.name] = key
        kept = frame_keys[t.name] = {}
        for s in evidence_scores(outcome, per_detection):
            if s.index in by_index:
                frame_key = evidence_frame_key(media, t.name, t.version, s.index)
                store.put(frame_key, evidence_jpeg(by_index[s.index].image, s.box, FRAME_THUMBNAIL_SIDE))
                if s.box is not None:
                    store.put(evidence_face_key(frame_key), jpeg_thumbnail(face_crop(by_index[s.index].image, s.box), quality=95))
                kept[s.index] = frame_key
    return keys, frame_keys


def evidence_file_name(video_id: int, target_name: str, timestamp: float | None) -> str:
    """``12-trump-at-3.0s.jpg``: the video, the target and where in the video the frame is."""
    when = f"-at-{timestamp:.1f}s" if timestamp is not None else ""
    return f"{video_id}-{safe_name(target_name)}{when}.jpg"


def export_evidence(store: MediaStore, video_id: int, detections: Iterable[Detection], out_dir: Path) -> list[Path]:
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
