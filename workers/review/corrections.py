"""Corrections that improve targets: reviewed frames become a face target's
gallery or negative gallery (each change a new target version), and stored
videos are rescored with the new version (``rescan``).

A reviewed frame's face embedding is computed again from the frame: decoded
from the video while it is still in the media store (or, for an in-process
scan, at its local path), which gives exactly the embedding that was scored;
else from the full-resolution face crop kept with the frame's evidence (within
~0.07 of it). Frames with neither are reported, not guessed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from workers.detect.registry import kinds
from workers.errors import TrackerError
from workers.images import read_rgb
from workers.media import store_from_settings
from workers.media.keys import evidence_face_key
from workers.media.store import MediaStore
from workers.settings import Settings
from workers.storage import results
from workers.storage.db import session_scope
from workers.storage.models import Detection, FrameScore, ReviewVerdict, Video
from workers.targets import published
from workers.targets.bundle import load_target, target_meta
from workers.video.sampling import read_frames_at
from workers.video_ref import is_url

log = logging.getLogger(__name__)

_embedders: dict = {}


def face_embedder(settings: Settings):
    """One face embedder per process (dlib's models load once)."""
    if "faces" not in _embedders:
        from workers.detect.registry import make_extractor

        _embedders["faces"] = make_extractor("faces", settings)
    return _embedders["faces"]


@dataclass
class Correction:
    """What applying reviewed frames to a target did."""

    target: str
    version: str | None = None  # the new version, None when nothing changed
    added: int = 0
    problems: list[str] = field(default_factory=list)


@contextmanager
def video_file(store: MediaStore, video: Video) -> Iterator[Path | None]:
    """A local path of the video while it is available (in the media store, or the local
    file an in-process scan read), else None."""
    key = video.video_key
    if key and store.exists(key):
        with store.local_path(key) as path:
            yield path
    elif not is_url(video.source) and Path(video.source).is_file():
        yield Path(video.source)
    else:
        yield None


def _nearest_face(faces, box):
    """The detected face whose box is closest to ``box`` (top, right, bottom, left), or None."""
    if not faces:
        return None
    if box is None:
        return faces[0] if len(faces) == 1 else None
    centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
    return min(faces, key=lambda f: float(np.linalg.norm(np.array([(f.box[0] + f.box[2]) / 2, (f.box[1] + f.box[3]) / 2]) - centre)))


def frame_embeddings(
    settings: Settings, store: MediaStore, video: Video, frames: Sequence[FrameScore]
) -> tuple[dict[int, np.ndarray], list[str]]:
    """The scored face of each frame (frame index -> embedding), and a line for each frame without one."""
    embedder = face_embedder(settings)
    out: dict[int, np.ndarray] = {}
    with video_file(store, video) as path:
        if path is not None:
            decoded = {
                f.index: f.image
                for f in read_frames_at(path, [f.frame_index for f in frames], settings.max_frame_side, settings.skip_loop_filter)
            }
            for frame in frames:
                if frame.frame_index in decoded:
                    face = _nearest_face(embedder.extract([decoded[frame.frame_index]])[0], frame.box)
                    if face is not None:
                        out[frame.frame_index] = face.embedding
    problems = []
    for frame in frames:
        if frame.frame_index in out:
            continue
        face_key = evidence_face_key(frame.evidence_key) if frame.evidence_key else None
        face = None
        if face_key and store.exists(face_key):
            with store.local_path(face_key) as jpeg:
                crop = read_rgb(jpeg)
            if crop is not None:
                h, w = crop.shape[:2]
                face = _nearest_face(embedder.extract([crop])[0], (h / 3, w * 2 / 3, h * 2 / 3, w / 3))
        if face is None:
            problems.append(f"frame {frame.frame_index}: no face found again (video and evidence gone, or no face)")
        else:
            out[frame.frame_index] = face.embedding
    return out, problems


def apply_frame_marks(
    settings: Settings, detection_id: int, frame_indices: Sequence[int], verdict: str, by: str | None = None
) -> Correction:
    """Add the faces of a face detection's frames marked ``target`` to the target's gallery,
    or those marked ``not_target`` to its negative gallery, and save the new version
    (its history says ``by`` whom).
    Classifier targets are left as they are (their marks count when retrained with reviews)."""
    if verdict not in ReviewVerdict.FRAME:
        raise TrackerError(f"frame marks are {' or '.join(ReviewVerdict.FRAME)}, not {verdict!r}")
    store = store_from_settings(settings)
    with session_scope(settings.resolved_database_url) as s:
        detection = s.get(Detection, detection_id)
        if detection is None:
            raise TrackerError(f"no detection {detection_id}")
        name, kind, video = detection.target_name, detection.target_kind, detection.video
        wanted = set(frame_indices)
        frames = [f for f in detection.frame_scores if f.frame_index in wanted]
        s.expunge_all()
    correction = Correction(name)
    declared = kinds().get(kind)  # a kind whose targets take marked frames at once (faces: their galleries)
    if declared is None or not declared.corrected_by_marks or not frames:
        return correction
    embeddings, correction.problems = frame_embeddings(settings, store, video, frames)
    if not embeddings:
        return correction
    names = [(f"video{video.id}-frame{index}", vector) for index, vector in sorted(embeddings.items())]
    before = target_meta(settings.models_dir, name)
    target = load_target(settings.models_dir, name)
    if verdict == ReviewVerdict.TARGET:
        corrected = target.with_corrections(positives=names)
        change = f"{len(names)} face(s) from video {video.id} added to the gallery"
    else:
        corrected = target.with_corrections(negatives=names)
        change = f"{len(names)} face(s) from video {video.id} added to the negative gallery"
    published.save_target(corrected, settings, extra=history_after(before, change, by))  # and published for workers
    correction.version, correction.added = corrected.version, len(names)
    log.info("target %s: %s (version %s)", name, change, corrected.version)
    return correction


def history_after(before: dict, change: str, by: str | None = None) -> dict:
    """``target.json`` fields that carry a target's version history into its next version
    (``by``: the account that made the change, when known)."""
    previous = {
        "version": before.get("version"),
        "created": before.get("created"),
        "change": before.get("change", "created"),
        "by": before.get("by"),
    }
    return {"history": [*before.get("history", []), previous], "change": change, "by": by}


@dataclass
class RescanReport:
    target: str
    version: str
    rescanned: list[int] = field(default_factory=list)  # video ids
    unavailable: list[int] = field(default_factory=list)  # neither the video nor its frames are kept
    failed: list[int] = field(default_factory=list)


def queue_rescan(settings: Settings, name: str, since: datetime | None = None, all_frames: bool = False) -> RescanReport:
    """``rescan`` through the pipeline's queues (the web app, with a broker configured): each video
    with a verdict for the target runs again as a new job, scored by the workers with the version
    they load, instead of inside the web process. ``rescanned``: the videos queued."""
    from workers.pipeline.submit import submit
    from workers.pipeline.tasks import publisher

    version = str(published.catalog_for(settings).meta(name).get("version", ""))
    with session_scope(settings.resolved_database_url) as s:
        sources = {d.video_id: d.video.source for d, _ in results.verdicts(s, name, since=since)}
    with publisher(settings) as publish:
        jobs = submit(settings, list(dict.fromkeys(sources.values())), [name], publish, force=True, all_frames=all_frames)
    return RescanReport(name, version, rescanned=sorted(j.video_id for j in jobs if not j.existing))


def rescan(settings: Settings, name: str, since: datetime | None = None, all_frames: bool = False) -> RescanReport:
    """Rescore, with the target's current version, every video that has a verdict for it
    (found at or after ``since``) and whose file is still available (``all_frames``: as ``scan --all-frames``)."""
    from workers.scan import Scanner

    scanner = Scanner.for_names(settings, [name], all_frames=all_frames)
    report = RescanReport(name, scanner.targets[0].version)
    store = store_from_settings(settings)
    with session_scope(settings.resolved_database_url) as s:
        videos = {d.video_id: d.video for d, _ in results.verdicts(s, name, since=since)}
        s.expunge_all()
    for video_id, video in sorted(videos.items()):
        with video_file(store, video) as path:
            if path is None:
                report.unavailable.append(video_id)
                continue
            rows = scanner.scan_file(path, source=video.source, video_id=video_id)
        (report.failed if any(r.verdict == "failed" for r in rows) else report.rescanned).append(video_id)
    return report
