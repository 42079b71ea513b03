"""Frame batches: the frames stage's output, written and read in chunks so that a
worker's memory does not grow with the length of the video.

A batch is a zip archive (stored, not deflated: its members are compressed
already) of ``chunk-NNNNN.npz`` members of up to ``CHUNK_FRAMES`` frames each,
written as the decoder yields them, and a last ``batch.json`` (frame count, the
views it holds, the video's probed facts, decoding report). Each chunk holds the
frames' ``indices`` and ``timestamps`` and, per view that the video's targets read
(``workers.detect.views``, named by its key), the frames as the view encodes them:

- lossless views: one array of the view's pixels (N x h x w [x 3] uint8), zlib-compressed,
  so scores are those of the in-process scan (the classifier's resized copies);
- JPEG views: the JPEGs end to end, and where each ends (``<key>.ends``). A 720p frame
  is about 3-8% of its raw size (faces), where raw frames made a 10-minute video's
  batch 1.7 GB.

Readers get one view's frames one at a time (``FrameBatch.frames``): one chunk of
compressed data and one frame decoded at a time. Batches of format 2 (a ``backbone``
array and full-frame ``jpeg``) are read as the two views they hold. No Celery.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from workers.detect.views import FrameView
from workers.media.store import MediaMissing, MediaStore
from workers.video.sampling import Frame, SampledVideo, VideoInfo

CHUNK_FRAMES = 32
MANIFEST = "batch.json"
FORMAT = 3


class NotAFrameBatch(ValueError):
    """The file is not a frame batch of this format."""


def _members(view: FrameView) -> tuple[str, str | None]:
    """A view's arrays in each chunk: its frames (pixels, or JPEGs end to end), and where each JPEG ends."""
    return (view.key, None) if view.encoding == "lossless" else (view.key, f"{view.key}.ends")


class FrameBatchWriter:
    """Frames in, chunks out (``add``), then the manifest (``close``)."""

    def __init__(self, fh: BinaryIO, views: Iterable[FrameView]) -> None:
        self.zip = zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED, allowZip64=True)
        self.views = list(dict.fromkeys(views))
        self.count, self.chunks = 0, 0
        self._reset()

    def _reset(self) -> None:
        self._indices: list[int] = []
        self._stamps: list[float] = []
        self._encoded: dict[FrameView, list] = {view: [] for view in self.views}

    def add(self, frame: Frame) -> None:
        self._indices.append(frame.index)
        self._stamps.append(frame.timestamp)
        for view in self.views:
            self._encoded[view].append(view.encode(frame.image))
        self.count += 1
        if len(self._indices) >= CHUNK_FRAMES:
            self._flush()

    def _flush(self) -> None:
        if not self._indices:
            return
        arrays = {"indices": np.asarray(self._indices, np.int64), "timestamps": np.asarray(self._stamps, np.float64)}
        for view, encoded in self._encoded.items():
            pixels, ends = _members(view)
            if ends is None:
                arrays[pixels] = np.stack(encoded)
            else:
                arrays[pixels] = np.frombuffer(b"".join(encoded), np.uint8)
                arrays[ends] = np.cumsum([len(e) for e in encoded]).astype(np.int64)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        self.zip.writestr(f"chunk-{self.chunks:05d}.npz", buffer.getvalue())
        self.chunks += 1
        self._reset()

    def close(self, info: VideoInfo, extra: dict | None = None) -> None:
        self._flush()
        manifest = {
            "format": FORMAT,
            "frames": self.count,
            "chunks": self.chunks,
            "info": [info.fps, info.frame_count, info.width, info.height],
            "views": {view.key: _members(view) for view in self.views},
            "extra": extra or {},
        }
        self.zip.writestr(MANIFEST, json.dumps(manifest))
        self.zip.close()


@dataclass
class FrameBatch:
    """An open frame batch: its facts, and its frames read one chunk at a time."""

    zip: zipfile.ZipFile
    count: int
    info: VideoInfo
    members: dict[str, tuple[str, str | None]]  # view key -> (its pixels' array, where each JPEG ends)
    extra: dict = field(default_factory=dict)
    chunks: int = 0
    name: str = "frame batch"

    def frames(self, view: FrameView) -> Iterator[Frame]:
        """The frames in order, as ``view`` reads them; ``MediaMissing`` at once when the batch
        was written without that view."""
        if view.key not in self.members and self.count:
            held = ", ".join(self.members) or "none"
            raise MediaMissing(f"{self.name}: no {view.key} frames in this frame batch (it holds {held}; its targets changed kind?)")
        return self._frames(view, *self.members.get(view.key, (view.key, None)))

    def _frames(self, view: FrameView, pixels: str, ends: str | None) -> Iterator[Frame]:
        for n in range(self.chunks):
            with self.zip.open(f"chunk-{n:05d}.npz") as member, np.load(io.BytesIO(member.read())) as chunk:
                indices, stamps, data = chunk["indices"], chunk["timestamps"], chunk[pixels]
                if ends is None:
                    encoded: Iterable = data
                else:
                    stops = chunk[ends]
                    encoded = (data[a:b] for a, b in zip(np.concatenate([[0], stops[:-1]]), stops, strict=True))
                for index, stamp, part in zip(indices, stamps, encoded, strict=True):
                    yield Frame(int(index), float(stamp), view.decode(part))


def _format2_members(archive: zipfile.ZipFile, manifest: dict) -> dict[str, tuple[str, str | None]]:
    """The views a format-2 batch holds: its resized copies (their size read from the first
    chunk) and its frames as sampled (JPEG)."""
    members: dict[str, tuple[str, str | None]] = {}
    if manifest["backbone"] and manifest["chunks"]:
        with np.load(io.BytesIO(archive.read("chunk-00000.npz"))) as chunk:
            h, w = chunk["backbone"].shape[1:3]
        members[FrameView((int(w), int(h)), "rgb", "lossless").key] = ("backbone", None)
    if manifest["images"]:
        members[FrameView(None, "rgb", "jpeg").key] = ("jpeg", "jpeg_ends")
    return members


@contextmanager
def open_batch(path: str | Path, name: str | None = None) -> Iterator[FrameBatch]:
    try:
        archive = zipfile.ZipFile(path)
        manifest = json.loads(archive.read(MANIFEST))
        if manifest.get("format") == FORMAT:
            members = {key: (pixels, ends) for key, (pixels, ends) in manifest["views"].items()}
        elif manifest.get("format") == 2:
            members = _format2_members(archive, manifest)
        else:
            raise ValueError(f"format {manifest.get('format')}")
    except (zipfile.BadZipFile, KeyError, ValueError):
        raise NotAFrameBatch(f"{path}: not a frame batch (written by another version?)") from None
    fps, frame_count, width, height = manifest["info"]
    with archive:
        yield FrameBatch(
            archive,
            int(manifest["frames"]),
            VideoInfo(float(fps), int(frame_count), int(width), int(height)),
            members,
            manifest.get("extra") or {},
            int(manifest["chunks"]),
            name or str(path),
        )


# --- in the media store ---------------------------------------------------------------


def write_frame_stream(
    fh: BinaryIO,
    frames: Iterable[Frame],
    info: Callable[[], VideoInfo],
    views: Iterable[FrameView],
    extra: Callable[[], dict] | None = None,
) -> int:
    """Write frames as they come (a decoder's iterator) into a frame batch on ``fh``, each
    in every one of ``views`` (those the video's targets read: ``registry.by_view``), so that
    a score worker reads only what its models take and spends no time resizing; returns how
    many. ``info`` (and ``extra``, stored in the manifest) are asked for once the frames are
    exhausted. Memory: one chunk of frames, whatever the length."""
    writer = FrameBatchWriter(fh, views)
    for frame in frames:
        writer.add(frame)
    writer.close(info(), extra() if extra else None)
    return writer.count


def write_frames(fh: BinaryIO, sampled: SampledVideo, views: Iterable[FrameView]) -> None:
    """A whole sampled video as a frame batch (``write_frame_stream``)."""
    write_frame_stream(fh, sampled.frames, lambda: sampled.info, views)


@contextmanager
def open_frames(store: MediaStore, key: str) -> Iterator[FrameBatch]:
    """The frame batch at ``key``, open for reading its frames one at a time."""
    with store.local_path(key) as path:
        try:
            with open_batch(path, key) as batch:
                yield batch
        except NotAFrameBatch as exc:
            raise MediaMissing(f"{key}: {exc}") from None


def load_frames(store: MediaStore, key: str, view: FrameView) -> SampledVideo:
    """The whole frame batch at ``key`` in memory, as ``view`` reads it (small batches, tests)."""
    with open_frames(store, key) as batch:
        return SampledVideo(batch.info, list(batch.frames(view)))
