"""Sample frames from a video file, the tutorial's way but without disk round trips.

The tutorial kept every frame whose index is divisible by ``floor(fps)`` (one
per second). ``frame_step`` generalises that to any rate; ``sample_frames``
decodes sequentially and only converts (retrieves) the frames it keeps, so
skipped frames cost a decode but no colour conversion or copy.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import cv2
import numpy as np

from workers.errors import BadVideo
from workers.images import fit_within

# Containers report absurd rates sometimes (0, 90000): fall back to this.
_FALLBACK_FPS = 30.0
# FFmpeg's own decoding threads. One: FFmpeg's default (a thread per core) took
# 40% more CPU time for the same frames (bench videos: 4.0 vs 2.9 CPU s) and
# hardly less wall time; the pipeline already decodes one video per core.
DECODE_THREADS = 1


@dataclass(frozen=True)
class VideoInfo:
    fps: float
    frame_count: int  # as reported by the container; may be approximate
    width: int
    height: int

    @property
    def duration(self) -> float:
        return self.frame_count / self.fps if self.fps else 0.0


@dataclass(frozen=True)
class Frame:
    index: int  # frame number in the decoded stream
    timestamp: float  # seconds from the start
    image: np.ndarray  # RGB, uint8, HxWx3, upright (rotation metadata applied)


def frame_step(fps: float, rate: float = 1.0) -> int:
    """Keep every ``frame_step``-th frame: ``floor(fps / rate)``, at least 1."""
    if rate <= 0:
        raise ValueError("frame rate must be positive")
    return max(1, math.floor(fps / rate))


def content_hash(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of the file's bytes: a video's identity whatever its name."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _open(path: str | Path) -> cv2.VideoCapture:
    p = Path(path)
    if not p.is_file():
        raise BadVideo(f"{p}: no such file")
    if p.stat().st_size == 0:
        raise BadVideo(f"{p}: empty file")
    cap = cv2.VideoCapture(str(p), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, DECODE_THREADS])
    if not cap.isOpened():
        cap.release()
        raise BadVideo(f"{p}: not a readable video (unknown or corrupt container)")
    # Apply rotation metadata so portrait phone videos come out upright.
    cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
    return cap


def _info(cap: cv2.VideoCapture) -> VideoInfo:
    fps = cap.get(cv2.CAP_PROP_FPS)
    if not fps or not math.isfinite(fps) or fps <= 0 or fps > 1000:
        fps = _FALLBACK_FPS
    return VideoInfo(
        fps=float(fps),
        frame_count=max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT))),
        width=int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
        height=int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
    )


def probe_video(path: str | Path) -> VideoInfo:
    """Container facts (rate, frame count, size); raises ``BadVideo`` if unreadable."""
    cap = _open(path)
    try:
        return _info(cap)
    finally:
        cap.release()


def sample_frames(
    path: str | Path, rate: float = 1.0, max_side: int | None = None
) -> Iterator[Frame]:
    """Yield one frame every ``1/rate`` seconds (frame index divisible by the step).

    Raises ``BadVideo`` when the file cannot be opened or yields no frame at all.
    A stream that breaks off midway (truncated file) ends the iteration with the
    frames decoded so far; the caller sees fewer frames, not an exception.
    """
    cap = _open(path)
    try:
        info = _info(cap)
        yield from _decode(cap, info, path, _every(frame_step(info.fps, rate)), max_side)
    finally:
        cap.release()


def _decode(
    cap: cv2.VideoCapture,
    info: VideoInfo,
    path: str | Path,
    keep: Callable[[int], bool],
    max_side: int | None,
    last: int | None = None,
) -> Iterator[Frame]:
    """Decode in order, converting only the frames whose number ``keep`` accepts (up to ``last``)."""
    index = 0
    yielded = 0
    while (last is None or index <= last) and cap.grab():
        if keep(index):
            ok, bgr = cap.retrieve()
            if ok and bgr is not None and bgr.size:
                if bgr.ndim == 2:
                    bgr = cv2.cvtColor(bgr, cv2.COLOR_GRAY2BGR)
                rgb = cv2.cvtColor(fit_within(bgr, max_side), cv2.COLOR_BGR2RGB)
                yield Frame(index=index, timestamp=index / info.fps, image=rgb)
                yielded += 1
        index += 1
    if yielded == 0:
        raise BadVideo(f"{Path(path)}: no decodable frames (empty or corrupt video)")


def _every(step: int) -> Callable[[int], bool]:
    return lambda index: index % step == 0


@dataclass
class SampledVideo:
    """All sampled frames of one video, in order: what the score stage consumes."""

    info: VideoInfo
    frames: list[Frame]

    @property
    def indices(self) -> list[int]:
        return [f.index for f in self.frames]

    @property
    def timestamps(self) -> list[float]:
        return [f.timestamp for f in self.frames]


def read_sampled(path: str | Path, rate: float = 1.0, max_side: int | None = None) -> SampledVideo:
    """Probe and sample a whole video, opening it once (raises ``BadVideo``)."""
    cap = _open(path)
    try:
        info = _info(cap)
        return SampledVideo(info, list(_decode(cap, info, path, _every(frame_step(info.fps, rate)), max_side)))
    finally:
        cap.release()


def read_frames_at(path: str | Path, indices: Iterable[int], max_side: int | None = None) -> list[Frame]:
    """The frames numbered ``indices``, numbered and converted as ``read_sampled``
    does (the same pixels), decoding only up to the last of them."""
    wanted = set(indices)
    if not wanted:
        return []
    cap = _open(path)
    try:
        return list(_decode(cap, _info(cap), path, wanted.__contains__, max_side, last=max(wanted)))
    finally:
        cap.release()
