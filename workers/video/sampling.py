"""Sample frames from a video file, the tutorial's way but without disk round trips.

The tutorial kept every frame whose index is divisible by ``floor(fps)`` (one
per second). ``frame_step`` generalises that to any rate; ``sample_frames``
decodes sequentially with FFmpeg (through PyAV) and converts only the frames
it keeps. Frames are numbered in display order, as OpenCV numbers them (the
pixels are the same too: tested). Frames nothing refers to (most B-frames of
a phone or TikTok H.264/HEVC video) are not even decoded unless they are
kept: knowing each packet's place in display order beforehand (one cheap pass
over the packets), the decoder is told to drop non-reference frames that are
not wanted. That cut Trump.mp4's decoding CPU time in half and Biden.mp4's by
a third; files without B-frames decode as before.

With ``skip_loop_filter`` (the ``skip_loop_filter`` setting, off by default) the
H.264/HEVC decoder also skips its deblocking filter on every frame but
keyframes. PyAV sets that option only when the decoder opens, so it cannot be
limited to the unsampled frames as ``skip_frame`` is; reference frames decoded
without it make the frames predicted from them differ slightly from an exact
decode (bench/decode_options.py: 8-19% less CPU; the seed set's classifier
scores stayed on their side of the threshold, but moved by up to 0.1, more than
the closest frame's margin, hence off by default). Off, frames are OpenCV's exactly.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import av
import numpy as np

from workers.errors import BadVideo
from workers.images import fit_within

# Containers report absurd rates sometimes (0, 90000): fall back to this.
_FALLBACK_FPS = 30.0
# FFmpeg's own decoding threads. One: FFmpeg's default (a thread per core) took
# 40% more CPU time for the same frames (bench videos: 4.0 vs 2.9 CPU s) and
# hardly less wall time; the pipeline already decodes one video per core. One
# thread also lets the decoder skip unwanted frames packet by packet.
DECODE_THREADS = 1
# OpenCV's colour conversion, so that frames (and scores) match its, bit for bit.
_INTERPOLATION = "BICUBIC"
# FFmpeg's AVDiscard value for skip_loop_filter when it is asked for: every frame but keyframes.
LOOP_FILTER_SKIPPED_ON = "nokey"


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


class FrameWatch(Protocol):
    """Sees the frames of a sampling pass at full resolution, before ``max_side`` shrinks them,
    and may ask for more frames than are sampled (``workers.reposts.hashing``: PDQ hashes as
    vPDQ takes them, and of frames between the samples). The sampled frames are unchanged."""

    def wants(self, index: int, step: int) -> bool:
        """Whether frame ``index`` is wanted besides the sampled ones (every ``step``-th)."""
        ...

    def see(self, frame: Frame, sampled: bool) -> None:
        """A wanted frame, upright, at full size: RGB when ``sampled``, else its luma (HxW, from the decoder's Y plane)."""
        ...


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


def _open(path: str | Path) -> av.container.InputContainer:
    p = Path(path)
    if not p.is_file():
        raise BadVideo(f"{p}: no such file")
    if p.stat().st_size == 0:
        raise BadVideo(f"{p}: empty file")
    try:
        container = av.open(str(p))
    except (av.error.FFmpegError, ValueError, UnicodeDecodeError):
        raise BadVideo(f"{p}: not a readable video (unknown or corrupt container)") from None
    if not container.streams.video:
        container.close()
        raise BadVideo(f"{p}: not a readable video (no video stream)")
    return container


def _display_order(path: str | Path) -> dict[int, int] | None:
    """Packet pts -> frame number in display order, from one pass over the
    packets (no decoding); None when some packet has no (or a repeated) pts."""
    try:
        with _open(path) as container:
            pts = [p.pts for p in container.demux(container.streams.video[0]) if p.size]
    except av.error.FFmpegError:
        return None
    if not pts or any(t is None for t in pts) or len(set(pts)) != len(pts):
        return None
    return {t: i for i, t in enumerate(sorted(pts))}


class VideoReader:
    """An open video: its facts, and its frames decoded in order."""

    def __init__(self, path: str | Path, skip_loop_filter: bool = False) -> None:
        self.path = Path(path)
        self.order = _display_order(path)
        self.container = _open(path)
        self.stream = self.container.streams.video[0]
        self.stream.thread_count = DECODE_THREADS
        if skip_loop_filter:  # applied when the decoder opens (first packet): one value for the stream
            self.stream.codec_context.options = {"skip_loop_filter": LOOP_FILTER_SKIPPED_ON}
        self.turns = 0  # quarter turns that make the frames upright (known once a frame is decoded)
        self.reached = 0  # frames of the stream decoded up to (1 + the highest display number seen)
        self.broken = False  # decoding ended in an error (a truncated or corrupt stream)

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.container.close()

    @property
    def info(self) -> VideoInfo:
        """Rate, frame count and size (upright, once a frame has been decoded)."""
        stream = self.stream
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else 0.0
        if not fps or not math.isfinite(fps) or fps <= 0 or fps > 1000:
            fps = _FALLBACK_FPS
        count = len(self.order) if self.order is not None else max(0, int(stream.frames or 0))
        width, height = stream.codec_context.width, stream.codec_context.height
        if self.turns % 2:
            width, height = height, width
        return VideoInfo(fps=fps, frame_count=count, width=width, height=height)

    def frames(
        self, keep: Callable[[int], bool], max_side: int | None, last: int | None = None, watch: tuple[FrameWatch, int] | None = None
    ) -> Iterator[Frame]:
        """The frames whose number ``keep`` accepts (up to ``last``), upright, RGB.
        ``watch``: (a ``FrameWatch``, the sampling step) also shown the frames at full size.

        A stream that breaks off midway ends the iteration with the frames so
        far; raises ``BadVideo`` when there are none at all."""
        yielded, fps = 0, self.info.fps
        wanted = keep if watch is None else (lambda i: keep(i) or watch[0].wants(i, watch[1]))
        for index, frame in self._decoded(wanted):
            if last is not None and index > last:
                break
            sampled = keep(index)
            if not sampled and not wanted(index):
                continue
            self.turns = _quarter_turns(frame)
            if watch is not None and not sampled:  # wanted by the watch only: its luma
                watch[0].see(Frame(index, index / fps, _turned(frame.to_ndarray(format="gray"), self.turns)), False)
                continue
            image = _rgb(frame, self.turns, None)
            if watch is not None:
                watch[0].see(Frame(index, index / fps, image), True)
            yield Frame(index=index, timestamp=index / fps, image=fit_within(image, max_side))
            yielded += 1
        if yielded == 0:
            raise BadVideo(f"{self.path}: no decodable frames (empty or corrupt video)")

    def _decoded(self, keep: Callable[[int], bool]) -> Iterator[tuple[int, av.VideoFrame]]:
        """(display number, frame) in display order; non-reference frames that
        ``keep`` rejects are dropped by the decoder when the order is known."""
        codec = self.stream.codec_context
        order, counted = self.order, 0
        try:
            for packet in self.container.demux(self.stream):
                pts = packet.pts
                if order is not None and pts is not None:
                    codec.skip_frame = "DEFAULT" if keep(order.get(pts, -1)) else "NONREF"
                for frame in codec.decode(packet if packet.size else None):
                    index = order.get(frame.pts, counted) if order is not None and frame.pts is not None else counted
                    counted += 1
                    self.reached = max(self.reached, index + 1)
                    yield index, frame
        except av.error.FFmpegError:
            self.broken = True
            return  # truncated or corrupt from here on: keep what was decoded

    def decoding(self) -> Decoding:
        """How far decoding got against what the container promised (after the frames were read)."""
        declared = max(0, int(self.stream.frames or 0))  # the container's header (an mp4's sample table)
        return Decoding(promised=declared or self.info.frame_count, decoded=self.reached, broken=self.broken)


@dataclass(frozen=True)
class Decoding:
    """Frames a video's container promised against those its stream gave: a truncated file
    promises more than it holds, and a verdict on it saw only part of the video."""

    promised: int  # frame count from the container (may be approximate)
    decoded: int  # frames the stream was decoded up to
    broken: bool = False  # decoding ended in an error

    # Containers round their counts, and the last non-reference frames of a stream may be
    # skipped rather than decoded: this many missing frames (or this fraction) are not a truncation.
    SLACK_FRAMES = 3
    SLACK_FRACTION = 0.02

    @property
    def partial(self) -> bool:
        missing = self.promised - self.decoded
        return self.broken or missing > max(self.SLACK_FRAMES, self.SLACK_FRACTION * self.promised)

    def to_json(self) -> dict[str, Any]:
        return {"promised_frames": self.promised, "decoded_frames": self.decoded, "broken": self.broken, "partial": self.partial}

    def warning(self, source: str) -> str | None:
        """A one-line warning for a partial video; None for a whole one."""
        if not self.partial:
            return None
        return (
            f"{source}: only {self.decoded} of the {self.promised} frames the container promises could be "
            "decoded (truncated or corrupt file): the verdict is based on part of the video"
        )


def _quarter_turns(frame: av.VideoFrame) -> int:
    """Counter-clockwise quarter turns (``np.rot90``) that the display matrix asks for."""
    return round((frame.rotation or 0) / 90) % 4


def _turned(image: np.ndarray, turns: int) -> np.ndarray:
    return np.ascontiguousarray(np.rot90(image, turns)) if turns else image


def _rgb(frame: av.VideoFrame, turns: int, max_side: int | None) -> np.ndarray:
    """The frame as RGB uint8, turned upright, scaled down to ``max_side``."""
    image: np.ndarray = frame.to_ndarray(format="rgb24", interpolation=_INTERPOLATION)
    return fit_within(_turned(image, turns), max_side)


def check_container(path: str | Path) -> None:
    """Raise ``BadVideo`` unless ``path`` opens as a media container with a video
    stream (cheap: nothing is demuxed or decoded; a file that opens may still fail to decode)."""
    _open(path).close()


def probe_video(path: str | Path) -> VideoInfo:
    """Container facts (rate, frame count, size); raises ``BadVideo`` if unreadable."""
    with VideoReader(path) as reader:
        return reader.info


def sample_frames(path: str | Path, rate: float = 1.0, max_side: int | None = None, skip_loop_filter: bool = False) -> Iterator[Frame]:
    """Yield one frame every ``1/rate`` seconds (frame index divisible by the step).

    Raises ``BadVideo`` when the file cannot be opened or yields no frame at all.
    A stream that breaks off midway (truncated file) ends the iteration with the
    frames decoded so far; the caller sees fewer frames, not an exception.
    ``skip_loop_filter``: see the module docstring.
    """
    with VideoReader(path, skip_loop_filter) as reader:
        yield from reader.frames(_every(frame_step(reader.info.fps, rate)), max_side)


def _every(step: int) -> Callable[[int], bool]:
    return lambda index: index >= 0 and index % step == 0


@dataclass
class SampledVideo:
    """All sampled frames of one video, in order: what the score stage consumes."""

    info: VideoInfo
    frames: list[Frame]
    decoding: Decoding | None = None  # how far decoding got (None: not recorded)

    @property
    def indices(self) -> list[int]:
        return [f.index for f in self.frames]

    @property
    def timestamps(self) -> list[float]:
        return [f.timestamp for f in self.frames]


def read_sampled(path: str | Path, rate: float = 1.0, max_side: int | None = None, skip_loop_filter: bool = False) -> SampledVideo:
    """Probe and sample a whole video, opening it once (raises ``BadVideo``)."""
    with open_sampled(path, rate, max_side, skip_loop_filter) as (reader, frames):
        kept = list(frames)
        return SampledVideo(reader.info, kept, reader.decoding())


@contextmanager
def open_sampled(
    path: str | Path, rate: float = 1.0, max_side: int | None = None, skip_loop_filter: bool = False, watch: FrameWatch | None = None
) -> Iterator[tuple[VideoReader, Iterator[Frame]]]:
    """The open video and its sampled frames as the decoder yields them (one in memory at a
    time); ``reader.info`` and ``reader.decoding()`` are complete once the frames are exhausted.
    ``watch`` sees them (and any other frames it wants) at full size on the way (``FrameWatch``).
    The iterator raises ``BadVideo`` when the video gives no frame at all."""
    with VideoReader(path, skip_loop_filter) as reader:
        step = frame_step(reader.info.fps, rate)
        yield reader, reader.frames(_every(step), max_side, watch=None if watch is None else (watch, step))


def read_frames_at(path: str | Path, indices: Iterable[int], max_side: int | None = None, skip_loop_filter: bool = False) -> list[Frame]:
    """The frames numbered ``indices``, numbered and converted as ``read_sampled``
    does with the same ``skip_loop_filter`` (the same pixels), decoding only up to the last of them."""
    wanted = set(indices)
    if not wanted:
        return []
    with VideoReader(path, skip_loop_filter) as reader:
        return list(reader.frames(wanted.__contains__, max_side, last=max(wanted)))
