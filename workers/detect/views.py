"""Frame views: what a detector kind reads of a sampled frame.

Each kind declares one ``FrameView`` (``DetectorKind.view``): the size the frame is
squashed to (or as sampled), its colours, and how a frame batch may store it
(lossless, or JPEG where the kind tolerates it). A view is rendered once per frame,
whichever way the video came: the frame batch stores ``encode``'s output and its
reader gives back ``decode``'s; the in-process scan takes ``render`` (the two in a
row), so scan, eval and pipeline score the same pixels. Targets of kinds that read
the same view share it (``workers.detect.registry.by_view``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, cast

import numpy as np

JPEG_QUALITY = 95  # a 720p frame is 3-8% of its raw size; face distances move far less than the tolerance


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Squash a frame to ``size`` (w, h), as the tutorial did; a frame already that size is
    returned as it is (so resizing twice is exact)."""
    if (image.shape[1], image.shape[0]) == tuple(size):
        return image
    import cv2  # here, so the backbone imports where only Keras and NumPy are installed (bench/gpu_score.py)

    return cv2.resize(image, tuple(size), interpolation=cv2.INTER_AREA)


@dataclass(frozen=True)
class FrameView:
    """A frame as one detector kind reads it: RGB uint8 (h, w, 3) or grey (h, w)."""

    size: tuple[int, int] | None  # (w, h) the frame is squashed to; None: as sampled
    colour: Literal["rgb", "gray"] = "rgb"
    encoding: Literal["lossless", "jpeg"] = "lossless"  # how a frame batch stores it (jpeg: lossy, far smaller)

    def __post_init__(self) -> None:
        if self.colour not in ("rgb", "gray") or self.encoding not in ("lossless", "jpeg"):
            raise ValueError(f"unknown frame view {self.colour!r}/{self.encoding!r}")

    @property
    def key(self) -> str:
        """A stable name (``224x224-rgb-lossless``, ``sampled-rgb-jpeg``): a frame batch's member names."""
        size = f"{self.size[0]}x{self.size[1]}" if self.size else "sampled"
        return f"{size}-{self.colour}-{self.encoding}"

    def encode(self, image: np.ndarray) -> np.ndarray | bytes:
        """What a frame batch keeps of an RGB frame as sampled: the view's pixels, or their JPEG."""
        pixels = image if self.size is None else resize(image, self.size)
        if self.colour == "gray":
            import cv2

            pixels = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
        if self.encoding == "lossless":
            return pixels
        return _jpeg(pixels)

    def decode(self, stored: np.ndarray | bytes) -> np.ndarray:
        """The view's pixels from what ``encode`` gave."""
        if self.encoding == "lossless":
            return cast(np.ndarray, stored)  # the pixels themselves
        return _unjpeg(stored, self.colour == "gray")

    def render(self, image: np.ndarray) -> np.ndarray:
        """The view of a frame as sampled, exactly as a frame batch gives it back."""
        return self.decode(self.encode(image))


def _jpeg(pixels: np.ndarray) -> bytes:
    import cv2

    bgr = pixels if pixels.ndim == 2 else cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError("could not encode a frame as JPEG")
    return data.tobytes()


def _unjpeg(data: bytes | np.ndarray, gray: bool) -> np.ndarray:
    import cv2

    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("a frame of the batch does not decode")
    return image if gray else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
