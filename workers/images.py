"""Still images on disk: which files count as images, reading them as RGB,
listing a folder's images in natural order."""

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
