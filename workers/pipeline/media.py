"""The media store: downloaded videos, sampled frame batches, scores in
transit between stages, and evidence thumbnails.

Everything is addressed by a *key* (``videos/12/source.mp4``), never by a
path (and never by a name from scraped metadata), so that the store can be
a local or shared directory (the default; a volume shared by every host of
a deployment) or, later, an S3-compatible bucket behind the same interface. Writes are atomic: a reader sees the whole
object or none of it, which keeps re-run stages idempotent.

Frame batches are ``.npz`` archives (uncompressed: decoding speed beats size
for objects that live a few seconds): ``backbone`` (N, 224, 224, 3) uint8 RGB,
``images`` (the frames as sampled; only when a target needs them: faces),
``indices``, ``timestamps`` and the video's probed ``info``. Scores between the
score and verdict stages are JSON (Python's float repr round-trips exactly).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from abc import ABC, abstractmethod
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator, Mapping, Sequence

import numpy as np

from workers.detect.backbone import resize_frame
from workers.detect.base import Target
from workers.detect.scoring import TargetSpec
from workers.errors import TrackerError
from workers.verdict import FrameScore
from workers.video.sampling import Frame, SampledVideo, VideoInfo

_KEY = re.compile(r"^[A-Za-z0-9_.=-]+(/[A-Za-z0-9_.=-]+)*$")


class MediaMissing(TrackerError):
    """An object a stage needs is not in the media store (deleted, or never written)."""


def check_key(key: str) -> str:
    """Keys are relative, '/'-separated names of letters, digits, '.', '_', '=', '-' (no '..')."""
    if not _KEY.match(key) or any(part in (".", "..") for part in key.split("/")):
        raise ValueError(f"invalid media key {key!r}")
    return key


class MediaStore(ABC):
    """Objects by key. Implementations must make ``put`` atomic."""

    @abstractmethod
    def put(self, key: str, data: bytes | BinaryIO) -> None:
        """Store ``data`` (bytes or a readable binary file) under ``key``, replacing any object there."""

    @contextmanager
    def writer(self, key: str) -> Iterator[BinaryIO]:
        """A binary file to write an object into, stored under ``key`` (atomically)
        when the block ends without an error; nothing is stored otherwise."""
        with tempfile.SpooledTemporaryFile(max_size=64 << 20) as tmp:
            yield tmp
            tmp.seek(0)
            self.put(key, tmp)

    def put_file(self, key: str, path: str | Path, move: bool = False) -> None:
        """Store a copy of the local file at ``path`` (``move``: and remove the file)."""
        with open(path, "rb") as fh:
            self.put(key, fh)
        if move:
            Path(path).unlink(missing_ok=True)

    @contextmanager
    def download_area(self) -> Iterator[Path]:
        """A fresh, empty local folder for a downloader to write into, removed afterwards.

        Put what it wrote into the store with ``put_file(key, path, move=True)``."""
        with tempfile.TemporaryDirectory(prefix="tt-download-") as folder:
            yield Path(folder)

    def drop_stale_downloads(self, older_than: float) -> int:
        """Remove download areas left by dead workers (untouched for ``older_than`` seconds); how many."""
        return 0

    def get(self, key: str) -> bytes:
        with self.open(key) as fh:
            return fh.read()

    @abstractmethod
    @contextmanager
    def open(self, key: str) -> Iterator[BinaryIO]:
        """A readable binary file of the object; ``MediaMissing`` when absent."""

    @abstractmethod
    @contextmanager
    def local_path(self, key: str) -> Iterator[Path]:
        """A local file holding the object, for libraries that need a path (OpenCV)."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; no error when it is already gone."""

    @abstractmethod
    def keys(self, prefix: str = "") -> Iterator[str]:
        """Keys of the objects under the folder ``prefix`` (``frames``, ``videos/12``; "": all)."""

    @abstractmethod
    def describe(self) -> str:
        """Where the store is, for logs and messages."""

    def location(self, key: str) -> str:
        """Where a person finds the object (a file path for a local store)."""
        return f"{self.describe()}/{check_key(key)}"


class LocalMediaStore(MediaStore):
    """A directory (local, or a volume shared by every worker host)."""

    DOWNLOADS = ".downloads"  # download areas: hidden, not keys, never listed

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, data: bytes | BinaryIO) -> None:
        with self.writer(key) as out:
            if isinstance(data, (bytes, bytearray, memoryview)):
                out.write(data)
            else:
                shutil.copyfileobj(data, out, 1 << 20)

    @contextmanager
    def writer(self, key: str) -> Iterator[BinaryIO]:
        final = self.path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                yield out
            os.replace(tmp, final)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @contextmanager
    def open(self, key: str) -> Iterator[BinaryIO]:
        try:
            fh = open(self.path(key), "rb")
        except FileNotFoundError:
            raise MediaMissing(f"{key}: not in the media store at {self.root}") from None
        with fh:
            yield fh

    @contextmanager
    def local_path(self, key: str) -> Iterator[Path]:
        path = self.path(key)
        if not path.is_file():
            raise MediaMissing(f"{key}: not in the media store at {self.root}")
        yield path

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def put_file(self, key: str, path: str | Path, move: bool = False) -> None:
        if not move:
            return super().put_file(key, path)
        final = self.path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(path, final)  # a rename when the download area is in the store
        except OSError:
            super().put_file(key, path, move=True)

    @contextmanager
    def download_area(self) -> Iterator[Path]:
        parent = self.root / self.DOWNLOADS
        parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="dl-", dir=parent) as folder:
            yield Path(folder)

    def drop_stale_downloads(self, older_than: float) -> int:
        parent = self.root / self.DOWNLOADS
        if not parent.is_dir():
            return 0
        dropped = 0
        for folder in parent.iterdir():
            try:
                newest = max([folder.stat().st_mtime, *(p.stat().st_mtime for p in folder.rglob("*"))])
            except OSError:
                continue
            if time.time() - newest > older_than:
                shutil.rmtree(folder, ignore_errors=True)
                dropped += 1
        return dropped

    def delete(self, key: str) -> None:
        path = self.path(key)
        path.unlink(missing_ok=True)
        # Drop now-empty folders up to the root (videos/12/ once its file is gone).
        for parent in path.parents:
            if parent == self.root or self.root not in parent.parents:
                break
            try:
                parent.rmdir()
            except OSError:
                break

    def keys(self, prefix: str = "") -> Iterator[str]:
        folder = self.path(prefix) if prefix else self.root
        if folder.is_dir():
            for path in sorted(folder.rglob("*")):
                relative = path.relative_to(self.root)
                if path.is_file() and not any(part.startswith(".") for part in relative.parts):
                    yield relative.as_posix()

    def describe(self) -> str:
        return str(self.root)

    def location(self, key: str) -> str:
        return str(self.path(key).resolve())


def store_from_settings(settings) -> MediaStore:
    """The media store the settings name (a directory: ``<data_dir>/media``)."""
    return LocalMediaStore(settings.media_dir)


# --- what the stages keep in the store ------------------------------------------


def video_key(video_id: int, suffix: str) -> str:
    suffix = suffix.lower() if re.fullmatch(r"\.[A-Za-z0-9]{1,8}", suffix or "") else ".video"
    return f"videos/{video_id}/source{suffix}"


def frames_key(video_id: int) -> str:
    return f"frames/{video_id}.npz"


def scores_key(video_id: int) -> str:
    return f"scores/{video_id}.json"


def evidence_key(video_id: int, target_name: str, target_version: str) -> str:
    return f"evidence/{video_id}/{target_name}-{target_version or 'unversioned'}.jpg"


def evidence_frame_key(video_id: int, target_name: str, target_version: str, frame_index: int) -> str:
    """One positive frame's review JPEG (``evidence_frames`` of them per detection)."""
    return f"evidence/{video_id}/{target_name}-{target_version or 'unversioned'}/{int(frame_index)}.jpg"


def evidence_face_key(frame_key: str) -> str:
    """The full-resolution face crop kept beside a frame's review JPEG (face targets)."""
    return frame_key.removesuffix(".jpg") + "-face.jpg"


def write_frames(
    fh: BinaryIO, sampled: SampledVideo, backbone_size: tuple[int, int] | None = None, full_frames: bool = True
) -> None:
    """A sampled video as an uncompressed ``.npz`` frame batch, written to ``fh``
    (write it straight into the store with ``MediaStore.writer``: no copy in memory).

    With ``backbone_size``, the batch also holds every frame already resized
    for the backbone (``backbone``: N x h x w x 3 uint8, from the full frames),
    so that a score worker whose targets need only VGG16 features reads a few MB
    instead of the full frames, and spends no time resizing. Without
    ``full_frames`` (targets that read only those), the full frames are left out.
    """
    info = sampled.info
    arrays = {
        "indices": np.asarray(sampled.indices, np.int64),
        "timestamps": np.asarray(sampled.timestamps, np.float64),
        "info": np.asarray([info.fps, info.frame_count, info.width, info.height], np.float64),
    }
    if full_frames:
        arrays["images"] = (
            np.stack([f.image for f in sampled.frames])
            if sampled.frames
            else np.zeros((0, max(info.height, 1), max(info.width, 1), 3), np.uint8)
        )
    if backbone_size is not None:
        w, h = backbone_size
        arrays["backbone"] = (
            np.stack([resize_frame(f.image, backbone_size) for f in sampled.frames])
            if sampled.frames
            else np.zeros((0, h, w, 3), np.uint8)
        )
    np.savez(fh, **arrays)


def load_frames(store: "MediaStore", key: str, backbone_only: bool = False) -> SampledVideo:
    """The frame batch at ``key``, read lazily from the store: with
    ``backbone_only`` (and a batch that has them), only the backbone-sized
    frames are read, not the full ones."""
    with store.open(key) as fh, np.load(fh, allow_pickle=False) as npz:
        member = "backbone" if backbone_only and "backbone" in npz.files else "images"
        if member not in npz.files:
            raise MediaMissing(f"{key}: this frame batch holds only backbone-sized frames (its targets changed kind?)")
        return _sampled(npz[member], npz["indices"], npz["timestamps"], npz["info"])


def _sampled(images: np.ndarray, indices: np.ndarray, stamps: np.ndarray, info: np.ndarray) -> SampledVideo:
    fps, frame_count, width, height = info.tolist()
    frames = [Frame(int(i), float(t), images[k]) for k, (i, t) in enumerate(zip(indices, stamps))]
    return SampledVideo(VideoInfo(float(fps), int(frame_count), int(width), int(height)), frames)


def encode_scores(targets: Sequence[Target | TargetSpec], scores: Mapping[str, Sequence[FrameScore]], total_frames: int) -> bytes:
    """The score stage's output: each target's spec and per-frame scores (JSON, floats exact)."""
    return json.dumps(
        {
            "total_frames": total_frames,
            "targets": [
                {
                    "spec": (t if isinstance(t, TargetSpec) else TargetSpec.of(t)).to_dict(),
                    "scores": [
                        [s.index, s.timestamp, s.score, list(s.box) if s.box else None, s.reused_from]
                        for s in scores[t.name]
                    ],
                }
                for t in targets
            ],
        }
    ).encode()


def decode_scores(data: bytes) -> tuple[list[TargetSpec], dict[str, list[FrameScore]], int]:
    """Inverse of ``encode_scores``: (specs, scores by target name, sampled frames in the video)."""
    doc = json.loads(data)
    specs = [TargetSpec.from_dict(entry["spec"]) for entry in doc["targets"]]
    scores = {
        spec.name: [
            FrameScore(int(i), float(t), float(s), tuple(box) if box else None, None if src is None else int(src))
            for i, t, s, box, src in entry["scores"]
        ]
        for spec, entry in zip(specs, doc["targets"])
    }
    return specs, scores, int(doc["total_frames"])
