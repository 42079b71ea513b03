"""The media store: downloaded videos, sampled frame batches, scores in
transit between stages, and evidence thumbnails.

Everything is addressed by a *key* (``videos/<job id>/source.mp4``), never by a
path (and never by a name from scraped metadata), so that the store can be
a local or shared directory (the default; a volume shared by every host of
a deployment) or, later, an S3-compatible bucket behind the same interface. Writes are atomic: a reader sees the whole
object or none of it, which keeps re-run stages idempotent.

Frame batches are written and read in chunks, the frames as sampled kept as
JPEG and only when a target needs them (faces): see
``workers.pipeline.frame_batch``. Scores between the score and verdict stages
are JSON (Python's float repr round-trips exactly).
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
from typing import BinaryIO, Callable, Iterable, Iterator, Mapping, Sequence

from workers.detect.backbone import resize_frame
from workers.detect.base import Target
from workers.detect.scoring import TargetSpec
from workers.errors import TrackerError
from workers.pipeline.frame_batch import FrameBatch, FrameBatchWriter, NotAFrameBatch, open_batch
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


def _file_mode() -> int:
    """The mode of a file created the ordinary way (0666 less the umask; 0644 usually)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


FILE_MODE = _file_mode()


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
        os.fchmod(fd, FILE_MODE)  # mkstemp's 0600 would hide thumbnails from the user's group
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


def write_frame_stream(
    fh: BinaryIO,
    frames: Iterable[Frame],
    info: Callable[[], VideoInfo],
    backbone_size: tuple[int, int] | None = None,
    full_frames: bool = True,
    extra: Callable[[], dict] | None = None,
) -> int:
    """Write frames as they come (a decoder's iterator) into a frame batch on ``fh``
    (see ``workers.pipeline.frame_batch``); returns how many. ``info`` (and ``extra``,
    stored in the manifest) are asked for once the frames are exhausted.

    With ``backbone_size``, the batch holds every frame resized for the backbone, so
    that a score worker whose targets need only VGG16 features reads a few MB and
    spends no time resizing; without ``full_frames`` (targets that read only those),
    the full frames are left out. Memory: one chunk of frames, whatever the length."""
    resize = (lambda image: resize_frame(image, backbone_size)) if backbone_size is not None else None
    writer = FrameBatchWriter(fh, resize, full_frames)
    for frame in frames:
        writer.add(frame)
    writer.close(info(), extra() if extra else None)
    return writer.count


def evidence_frame_key(media: str | int, target_name: str, target_version: str, frame_index: int) -> str:
    """One positive frame's review JPEG (``evidence_frames`` of them per detection)."""
    return f"evidence/{media}/{target_name}-{target_version or 'unversioned'}/{int(frame_index)}.jpg"


def evidence_face_key(frame_key: str) -> str:
    """The full-resolution face crop kept beside a frame's review JPEG (face targets)."""
    return frame_key.removesuffix(".jpg") + "-face.jpg"


def write_frames(
    fh: BinaryIO, sampled: SampledVideo, backbone_size: tuple[int, int] | None = None, full_frames: bool = True
) -> None:
    """A whole sampled video as a frame batch (``write_frame_stream``)."""
    write_frame_stream(fh, sampled.frames, lambda: sampled.info, backbone_size, full_frames)


@contextmanager
def open_frames(store: "MediaStore", key: str) -> Iterator[FrameBatch]:
    """The frame batch at ``key``, open for reading its frames one at a time."""
    with store.local_path(key) as path:
        try:
            with open_batch(path) as batch:
                yield batch
        except NotAFrameBatch as exc:
            raise MediaMissing(f"{key}: {exc}") from None


def load_frames(store: "MediaStore", key: str, backbone_only: bool = False) -> SampledVideo:
    """The whole frame batch at ``key`` in memory (small batches, tests): with
    ``backbone_only`` (and a batch that has them), the backbone-sized frames."""
    with open_frames(store, key) as batch:
        try:
            return SampledVideo(batch.info, list(batch.frames(backbone_only)))
        except ValueError as exc:
            raise MediaMissing(f"{key}: {exc}") from None


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
