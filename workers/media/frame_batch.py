"""Frame batches: the frames stage's output, written and read in chunks so that a
worker's memory does not grow with the length of the video.

A batch is a zip archive (stored, not deflated: its members are compressed
already) of ``chunk-NNNNN.npz`` members of up to ``CHUNK_FRAMES`` frames each,
written as the decoder yields them, and a last ``batch.json`` (frame count,
the video's probed facts, decoding report). Each chunk holds the frames'
``indices`` and ``timestamps``, and

- ``backbone``: the frames resized for the backbone (N x 224 x 224 x 3 uint8),
  zlib-compressed, lossless: classifier scores are those of the in-process scan;
- ``jpeg``/``jpeg_ends``: the frames as sampled, JPEG at ``FULL_FRAME_QUALITY``,
  only when a target reads them (faces). Lossy: a 720p frame is about 3-8% of
  its raw size, and face distances move by far less than the match tolerance
  (tested), where raw frames made a 10-minute video's batch 1.7 GB.

Readers get the frames one at a time (``FrameBatch.frames``): one chunk of
compressed data and one frame decoded at a time. Pure file format: no store,
no Celery.
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

import cv2
import numpy as np

from workers.video.sampling import Frame, VideoInfo

CHUNK_FRAMES = 32
FULL_FRAME_QUALITY = 95
MANIFEST = "batch.json"


class NotAFrameBatch(ValueError):
    """The file is not a frame batch of this format."""


def encode_jpeg(image: np.ndarray, quality: int = FULL_FRAME_QUALITY) -> bytes:
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("could not encode a frame as JPEG")
    return data.tobytes()


def decode_jpeg(data: bytes | np.ndarray) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("a frame of the batch does not decode")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


class FrameBatchWriter:
    """Frames in, chunks out (``add``), then the manifest (``close``)."""

    def __init__(self, fh: BinaryIO, backbone: Callable[[np.ndarray], np.ndarray] | None, full_frames: bool) -> None:
        self.zip = zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED, allowZip64=True)
        self.backbone, self.full_frames = backbone, full_frames
        self.count, self.chunks = 0, 0
        self._reset()

    def _reset(self) -> None:
        self._indices: list[int] = []
        self._stamps: list[float] = []
        self._small: list[np.ndarray] = []
        self._jpegs: list[bytes] = []

    def add(self, frame: Frame) -> None:
        self._indices.append(frame.index)
        self._stamps.append(frame.timestamp)
        if self.backbone is not None:
            self._small.append(self.backbone(frame.image))
        if self.full_frames:
            self._jpegs.append(encode_jpeg(frame.image))
        self.count += 1
        if len(self._indices) >= CHUNK_FRAMES:
            self._flush()

    def _flush(self) -> None:
        if not self._indices:
            return
        arrays = {"indices": np.asarray(self._indices, np.int64), "timestamps": np.asarray(self._stamps, np.float64)}
        if self.backbone is not None:
            arrays["backbone"] = np.stack(self._small)
        if self.full_frames:
            arrays["jpeg"] = np.frombuffer(b"".join(self._jpegs), np.uint8)
            arrays["jpeg_ends"] = np.cumsum([len(j) for j in self._jpegs]).astype(np.int64)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        self.zip.writestr(f"chunk-{self.chunks:05d}.npz", buffer.getvalue())
        self.chunks += 1
        self._reset()

    def close(self, info: VideoInfo, extra: dict | None = None) -> None:
        self._flush()
        manifest = {
            "format": 2,
            "frames": self.count,
            "chunks": self.chunks,
            "info": [info.fps, info.frame_count, info.width, info.height],
            "backbone": self.backbone is not None,
            "images": self.full_frames,
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
    has_backbone: bool
    has_images: bool
    extra: dict = field(default_factory=dict)
    chunks: int = 0

    def frames(self, backbone_only: bool = False) -> Iterator[Frame]:
        """The frames in order: backbone-sized ones with ``backbone_only`` (when the batch has
        them), else as sampled (``ValueError`` when the batch holds only backbone-sized frames)."""
        small = backbone_only and self.has_backbone
        if not small and not self.has_images:
            raise ValueError("this frame batch holds only backbone-sized frames (its targets changed kind?)")
        for n in range(self.chunks):
            with self.zip.open(f"chunk-{n:05d}.npz") as member, np.load(io.BytesIO(member.read())) as chunk:
                indices, stamps = chunk["indices"], chunk["timestamps"]
                if small:
                    images: Iterable = chunk["backbone"]
                else:
                    data, ends = chunk["jpeg"], chunk["jpeg_ends"]
                    starts = np.concatenate([[0], ends[:-1]])
                    images = (decode_jpeg(data[a:b]) for a, b in zip(starts, ends, strict=True))
                for index, stamp, image in zip(indices, stamps, images, strict=True):
                    yield Frame(int(index), float(stamp), image)


@contextmanager
def open_batch(path: str | Path) -> Iterator[FrameBatch]:
    try:
        archive = zipfile.ZipFile(path)
        manifest = json.loads(archive.read(MANIFEST))
    except (zipfile.BadZipFile, KeyError, ValueError):
        raise NotAFrameBatch(f"{path}: not a frame batch (written by another version?)") from None
    fps, frame_count, width, height = manifest["info"]
    with archive:
        yield FrameBatch(
            archive,
            int(manifest["frames"]),
            VideoInfo(float(fps), int(frame_count), int(width), int(height)),
            bool(manifest["backbone"]),
            bool(manifest["images"]),
            manifest.get("extra") or {},
            int(manifest["chunks"]),
        )
