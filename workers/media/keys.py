"""The key scheme of the media store, defined and parsed in one place.

    videos/<media>/source<.ext>                       a downloaded (or copied) video
    frames/<media>.npz                                its frame batch (frames stage -> score stage)
    scores/<media>.json                               its per-frame scores (score stage -> verdict stage)
    evidence/<media>/<target>-<version>.jpg           the best frame of a detection
    evidence/<media>/<target>-<version>/<frame>.jpg   a positive frame's review JPEG (+ ``-face.jpg``)
    targets/<name>/<version>/<file>                   a published target bundle's files (``workers.targets.published``)
    targets/<name>/current.json                       which version of the target workers use now

``<media>`` is the video's media id (``media_id``).
"""

from __future__ import annotations

import re


def media_id(job_id: str | None, video_id: int) -> str:
    """What a video's objects in the store are named by: its job id (a UUID), unique for
    ever, so that a reset database, whose ids start again at 1, never meets an earlier
    job's media; the database id only for videos without a job (the in-process scan)."""
    return job_id or str(video_id)


def video_key(media: str | int, suffix: str) -> str:
    suffix = suffix.lower() if re.fullmatch(r"\.[A-Za-z0-9]{1,8}", suffix or "") else ".video"
    return f"videos/{media}/source{suffix}"


def frames_key(media: str | int) -> str:
    return f"frames/{media}.npz"


def scores_key(media: str | int) -> str:
    return f"scores/{media}.json"


def evidence_key(media: str | int, target_name: str, target_version: str) -> str:
    return f"evidence/{media}/{target_name}-{target_version or 'unversioned'}.jpg"


def media_of_key(key: str) -> str | None:
    """The media id a ``videos/``, ``frames/`` or ``scores/`` key belongs to (``frames/ab.npz`` -> ``ab``)."""
    parts = key.split("/")
    if len(parts) < 2 or parts[0] not in ("videos", "frames", "scores"):
        return None
    return parts[1] if parts[0] == "videos" else parts[1].rsplit(".", 1)[0]


def evidence_frame_key(media: str | int, target_name: str, target_version: str, frame_index: int) -> str:
    """One positive frame's review JPEG (``evidence_frames`` of them per detection)."""
    return f"evidence/{media}/{target_name}-{target_version or 'unversioned'}/{int(frame_index)}.jpg"


def evidence_face_key(frame_key: str) -> str:
    """The full-resolution face crop kept beside a frame's review JPEG (face targets)."""
    return frame_key.removesuffix(".jpg") + "-face.jpg"


TARGETS = "targets"


def target_file_key(name: str, version: str, file: str) -> str:
    """One file of a published target bundle (``target.json``, ``head.keras``, ``gallery.npy`` ...)."""
    return f"{TARGETS}/{name}/{version}/{file}"


def target_pointer_key(name: str) -> str:
    """The published target's current version (written last: a reader sees a whole bundle)."""
    return f"{TARGETS}/{name}/current.json"


def target_of_pointer(key: str) -> str | None:
    """The target name a ``targets/<name>/current.json`` key is the pointer of."""
    parts = key.split("/")
    return parts[1] if len(parts) == 3 and parts[0] == TARGETS and parts[2] == "current.json" else None
