"""Demo media made offline from the images that ship with scikit-image.

``tiktok-tracker demo`` needs a person to enrol and two videos to scan without
any download: the astronaut (Eileen Collins, ``skimage.data.astronaut()``) is
the person; one video shows her, mirrored and at other scales than the
reference photo, and one shows other people (faces from the LFW subset shipped
with scikit-image, the cameraman) and scenes (coffee, a cat, a rocket), none of
them her. Everything here is a pure function of its output folder.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from skimage import data

from workers.errors import TrackerError

FPS = 10
SECONDS = 7
WIDTH, HEIGHT = 360, 640  # portrait, like a phone video

REFERENCE_NAME = "astronaut.jpg"
TARGET_VIDEO_NAME = "demo_astronaut.mp4"
OTHER_VIDEO_NAME = "demo_others.mp4"

# Head and shoulders of the astronaut. The full picture is not used: at
# upsample 1 dlib also "finds" a weak face in the mission patch below her
# shoulder, and a reference photo must show exactly one face.
_PORTRAIT = (slice(0, 400), slice(40, 440))

Scene = Callable[[float], np.ndarray]  # progress in [0, 1) -> RGB HxWx3 frame


def astronaut_portrait() -> np.ndarray:
    """The astronaut's head and shoulders (RGB, 400x400)."""
    return np.ascontiguousarray(data.astronaut()[_PORTRAIT])


def _rgb(image: np.ndarray) -> np.ndarray:
    """Any scikit-image sample (grey, RGB, RGBA, bool or float) as RGB uint8."""
    if image.dtype != np.uint8:
        image = (np.clip(image.astype(np.float64), 0.0, 1.0) * 255).round().astype(np.uint8)
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return np.ascontiguousarray(image[..., :3])


def _write_jpeg(path: Path, rgb: np.ndarray) -> Path:
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92]):
        raise TrackerError(f"{path}: could not write image")
    return path


def demo_reference_photo(folder: Path) -> Path:
    """Write the astronaut's photo (the face to enrol) into ``folder``; return its path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return _write_jpeg(folder / REFERENCE_NAME, astronaut_portrait())


def _background(image: np.ndarray) -> np.ndarray:
    """``image`` stretched over the whole frame, blurred and darkened."""
    frame = cv2.resize(_rgb(image), (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA)
    return (cv2.GaussianBlur(frame, (0, 0), 12) * 0.6).astype(np.uint8)


def _paste(frame: np.ndarray, picture: np.ndarray, width: int, center: tuple[float, float]) -> np.ndarray:
    """Copy of ``frame`` with ``picture`` scaled to ``width`` px, centred at (x, y), clipped."""
    height = max(1, round(picture.shape[0] * width / picture.shape[1]))
    scaled = cv2.resize(picture, (width, height), interpolation=cv2.INTER_AREA)
    out = frame.copy()
    x0, y0 = round(center[0] - width / 2), round(center[1] - height / 2)
    fx0, fy0 = max(x0, 0), max(y0, 0)
    fx1, fy1 = min(x0 + width, WIDTH), min(y0 + height, HEIGHT)
    if fx1 > fx0 and fy1 > fy0:
        out[fy0:fy1, fx0:fx1] = scaled[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0]
    return out


def _ken_burns(picture: np.ndarray, start: float, end: float, background: np.ndarray | None = None) -> Scene:
    """A scene slowly zooming ``picture`` from ``start`` to ``end`` times the frame width."""
    picture = _rgb(picture)
    backdrop = _background(picture) if background is None else background

    def render(t: float) -> np.ndarray:
        width = round(WIDTH * (start + (end - start) * t))
        return _paste(backdrop, picture, width, (WIDTH / 2, HEIGHT / 2 + 40 * (t - 0.5)))

    return render


def _lfw_faces() -> np.ndarray:
    """The 100 face crops (25x25, grey, float) of scikit-image's LFW subset."""
    return data.lfw_subset()[:100]


def _face_grid(indices: list[int], columns: int) -> np.ndarray:
    """LFW faces ``indices`` enlarged to 150 px and tiled with margins (RGB)."""
    faces = _lfw_faces()
    tile, margin = 150, 40
    rows = -(-len(indices) // columns)
    grid = np.full((rows * (tile + margin) + margin, columns * (tile + margin) + margin), 110, np.uint8)
    for n, index in enumerate(indices):
        face = cv2.resize(_rgb(faces[index])[..., 0], (tile, tile), interpolation=cv2.INTER_CUBIC)
        y = margin + (n // columns) * (tile + margin)
        x = margin + (n % columns) * (tile + margin)
        grid[y : y + tile, x : x + tile] = face
    return _rgb(grid)


def _astronaut_scene() -> Scene:
    """The astronaut mirrored, drifting and zooming over a blurred rocket launch."""
    portrait = astronaut_portrait()[:, ::-1]
    backdrop = _background(data.rocket())

    def render(t: float) -> np.ndarray:
        width = round(WIDTH * (0.75 + 0.2 * t))
        center = (WIDTH / 2 + 20 * np.sin(6 * t), HEIGHT * (0.55 - 0.1 * t))
        return _paste(backdrop, portrait, width, center)

    return render


def _write_video(path: Path, scenes: list[tuple[float, Scene]]) -> Path:
    """Render ``(seconds, scene)`` pairs one after another at ``FPS`` into an mp4."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (WIDTH, HEIGHT))
    if not writer.isOpened():
        raise TrackerError(f"{path}: cannot write an mp4v video (OpenCV built without a video encoder?)")
    try:
        for seconds, scene in scenes:
            frames = round(seconds * FPS)
            for index in range(frames):
                writer.write(cv2.cvtColor(scene(index / frames), cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return path


def make_demo_videos(folder: Path) -> tuple[Path, Path]:
    """Write the two demo videos into ``folder``: (shows the astronaut, shows others).

    Both are 7 s, 10 fps, 360x640 portrait mp4. The first opens with one
    second of coffee, then the astronaut; the second shows LFW faces, the
    cameraman, coffee, a cat and a rocket, one scene per second.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    astronaut = _write_video(
        folder / TARGET_VIDEO_NAME,
        [(1.0, _ken_burns(data.coffee(), 1.0, 1.1)), (SECONDS - 1.0, _astronaut_scene())],
    )
    others = _write_video(
        folder / OTHER_VIDEO_NAME,
        [
            (1.0, _ken_burns(_face_grid([0, 1, 2, 3, 4, 5], columns=2), 0.9, 1.0)),
            (1.0, _ken_burns(data.camera(), 1.0, 1.2)),
            (1.0, _ken_burns(_face_grid([6], columns=1), 0.7, 0.9)),
            (1.0, _ken_burns(data.coffee(), 1.0, 1.1)),
            (1.0, _ken_burns(data.chelsea(), 1.0, 1.2)),
            (1.0, _ken_burns(_face_grid([7, 8], columns=1), 0.6, 0.7)),
            (1.0, _ken_burns(data.rocket(), 1.0, 1.1)),
        ],
    )
    return astronaut, others
