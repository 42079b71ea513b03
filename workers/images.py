"""Still images: which files count as images, reading them as RGB, listing a
folder's images in natural order, scaling down and JPEG-encoding frames."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})


def natural_key(name: str) -> list:
    """'frame10.jpg' sorts after 'frame9.jpg'."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def images_in(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, in natural name order."""
    return sorted(
        (p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
        key=lambda p: natural_key(p.name),
    )


def read_rgb(path: Path) -> np.ndarray | None:
    """The image at ``path`` as RGB uint8, or None when it is not a readable image."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None or bgr.size == 0:
        return None
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def fit_within(image: np.ndarray, max_side: int | None) -> np.ndarray:
    """``image`` scaled down (area interpolation) so its longest side is at most
    ``max_side``; returned as it is when it already fits (or ``max_side`` is None)."""
    h, w = image.shape[:2]
    if max_side is None or max(h, w) <= max_side:
        return image
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def jpeg_thumbnail(image: np.ndarray, max_side: int | None = None, quality: int = 85) -> bytes:
    """JPEG bytes of an RGB (or grey) frame, scaled down to ``max_side`` first."""
    image = fit_within(image, max_side)
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("cannot encode the frame as JPEG")
    return buf.tobytes()
