"""Small generated media for tests: real mp4 files written with OpenCV."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def write_video(
    path: Path,
    seconds: float = 3.0,
    fps: float = 10.0,
    size: tuple[int, int] = (160, 120),
    color: tuple[int, int, int] = (200, 40, 40),
    noise: int = 20,
    seed: int = 0,
) -> Path:
    """A ``size`` (w, h) mp4 of ``seconds`` at ``fps``: a solid RGB ``color`` with
    a moving square and some noise, so frames differ like real footage."""
    rng = np.random.default_rng(seed)
    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert writer.isOpened(), "OpenCV cannot write mp4v here"
    n = int(round(seconds * fps))
    for i in range(n):
        frame = np.empty((h, w, 3), np.uint8)
        frame[:] = color[::-1]  # BGR
        x = int((w - w // 4) * i / max(1, n - 1))
        frame[h // 3 : h // 3 + h // 4, x : x + w // 4] = 255
        frame = np.clip(frame.astype(int) + rng.integers(-noise, noise + 1, frame.shape), 0, 255).astype(np.uint8)
        writer.write(frame)
    writer.release()
    return path


def write_image(path: Path, color: tuple[int, int, int], size: tuple[int, int] = (96, 96), seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    w, h = size
    img = np.empty((h, w, 3), np.uint8)
    img[:] = color[::-1]
    img = np.clip(img.astype(int) + rng.integers(-30, 31, img.shape), 0, 255).astype(np.uint8)
    cv2.imwrite(str(path), img)
    return path


def truncate(src: Path, dst: Path, keep: float = 0.4) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * keep)])
    return dst


def zero_frame_video(path: Path, size: tuple[int, int] = (160, 120)) -> Path:
    """A valid mp4 container with no frames in it."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, size)
    writer.release()
    return path


def truncated_copy(source: Path, dest: Path, keep: float = 1 / 3) -> Path:
    """``source`` remuxed with its index first (``faststart``, as TikTok serves videos) and cut
    to its first ``keep`` of bytes: the container still promises every frame, the file holds a few."""
    import av

    whole = dest.with_name(dest.stem + ".whole.mp4")
    with av.open(str(source)) as src, av.open(str(whole), "w", options={"movflags": "faststart"}) as out:
        stream = out.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    data = whole.read_bytes()
    whole.unlink()
    dest.write_bytes(data[: int(len(data) * keep)])
    return dest
