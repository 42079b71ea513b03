"""PDQ hashes of sampled frames (Meta's perceptual image hash, through ``pdqhash``).

Each frame gets its 256-bit hash, the hash of its mirror image (PDQ's
dihedral variants: a horizontally flipped repost matches through it), and
PDQ's quality (0-100; flat, featureless frames score low and are not used
for matching). PDQ is not robust to cropping (a 5% crop moves a frame's hash
40-55 bits), so each frame also gets the hash of its central ``CENTRE``
share: a copy cropped by about 3-7% is within a few bits of that. Frames are shrunk first: PDQ works on a 64x64 summary, so a
512-pixel copy gives the same hash for a fraction of the time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from workers.video.sampling import Frame

HASH_SIDE = 512  # longest side the frame is shrunk to before hashing
_MIRROR = 5  # index of the left-right flip among pdqhash.compute_dihedral's eight hashes
CENTRE = 0.95  # the central share of each side hashed as the frame's second hash


@dataclass(frozen=True)
class FrameHash:
    index: int  # frame number in the video
    timestamp: float
    pdq: str  # 64 hex digits (256 bits)
    centre: str  # the hash of the frame's centre (CENTRE of each side)
    quality: int  # PDQ quality, 0-100
    chroma: int  # mean chromaticity, packed (see ``chroma_of``)
    mirror: tuple[str, str] | None = None  # (pdq, centre) of the left-right mirrored frame (queries only; not stored)

    @property
    def frame(self) -> tuple[int, str, str]:
        """The frame as ``workers.reposts.matching`` compares it."""
        return self.chroma, self.pdq, self.centre

    @property
    def mirror_frame(self) -> tuple[int, str, str] | None:
        return (self.chroma, *self.mirror) if self.mirror else None


def chroma_of(image: np.ndarray) -> int:
    """The mean colour without its brightness (each channel's share of the sum, 0-255), packed in
    24 bits: a black caption band or a re-encode hardly moves it; a red copy of a blue video does."""
    mean = image.reshape(-1, image.shape[-1])[:, :3].mean(0)
    r, g, b = (np.round(255 * mean / max(float(mean.sum()), 1e-6))).astype(int).clip(0, 255)
    return int(r) << 16 | int(g) << 8 | int(b)


def bits_to_hex(bits: np.ndarray) -> str:
    return np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes().hex()


def _shrunk(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    scale = HASH_SIDE / max(h, w)
    if scale < 1:
        image = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(image)


def _centre(image: np.ndarray, share: float) -> np.ndarray:
    h, w = image.shape[:2]
    dh, dw = round(h * (1 - share) / 2), round(w * (1 - share) / 2)
    return np.ascontiguousarray(image[dh : h - dh, dw : w - dw])


def hash_image(image: np.ndarray) -> tuple[str, str, int]:
    """(hash, mirror hash, quality) of one RGB image."""
    import pdqhash

    hashes, quality = pdqhash.compute_dihedral(_shrunk(image))
    return bits_to_hex(hashes[0]), bits_to_hex(hashes[_MIRROR]), int(quality)


def hash_frame(frame: Frame) -> FrameHash:
    image = _shrunk(frame.image)
    pdq, mirror, quality = hash_image(image)
    centre, mirror_centre, _ = hash_image(_centre(image, CENTRE))
    return FrameHash(frame.index, frame.timestamp, pdq, centre, quality, chroma_of(image), (mirror, mirror_centre))


def hashed(frames: Iterable[Frame], into: list[FrameHash]) -> Iterator[Frame]:
    """The frames, unchanged, as they stream past (a decoder's iterator), each one's
    hashes appended to ``into`` on the way: hashing needs no frame kept in memory."""
    for frame in frames:
        into.append(hash_frame(frame))
        yield frame


def hash_frames(frames: Iterable[Frame]) -> list[FrameHash]:
    """The PDQ hashes of every frame (in order)."""
    return [hash_frame(f) for f in frames]
