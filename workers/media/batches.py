"""Frame batches in the media store: written from a decoder's stream, read one frame at a
time (the file format itself: ``workers.media.frame_batch``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import BinaryIO

from workers.detect.backbone import resize_frame
from workers.media.frame_batch import FrameBatch, FrameBatchWriter, NotAFrameBatch, open_batch
from workers.media.store import MediaMissing, MediaStore
from workers.video.sampling import Frame, SampledVideo, VideoInfo


def write_frame_stream(
    fh: BinaryIO,
    frames: Iterable[Frame],
    info: Callable[[], VideoInfo],
    backbone_size: tuple[int, int] | None = None,
    full_frames: bool = True,
    extra: Callable[[], dict] | None = None,
) -> int:
    """Write frames as they come (a decoder's iterator) into a frame batch on ``fh``
    (see ``workers.media.frame_batch``); returns how many. ``info`` (and ``extra``,
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


def write_frames(fh: BinaryIO, sampled: SampledVideo, backbone_size: tuple[int, int] | None = None, full_frames: bool = True) -> None:
    """A whole sampled video as a frame batch (``write_frame_stream``)."""
    write_frame_stream(fh, sampled.frames, lambda: sampled.info, backbone_size, full_frames)


@contextmanager
def open_frames(store: MediaStore, key: str) -> Iterator[FrameBatch]:
    """The frame batch at ``key``, open for reading its frames one at a time."""
    with store.local_path(key) as path:
        try:
            with open_batch(path) as batch:
                yield batch
        except NotAFrameBatch as exc:
            raise MediaMissing(f"{key}: {exc}") from None


def load_frames(store: MediaStore, key: str, backbone_only: bool = False) -> SampledVideo:
    """The whole frame batch at ``key`` in memory (small batches, tests): with
    ``backbone_only`` (and a batch that has them), the backbone-sized frames."""
    with open_frames(store, key) as batch:
        try:
            return SampledVideo(batch.info, list(batch.frames(backbone_only)))
        except ValueError as exc:
            raise MediaMissing(f"{key}: {exc}") from None
