"""PDQ hashes of sampled frames, as vPDQ takes them, and of their regions and neighbours.

PDQ (Meta's perceptual image hash) is computed here from its published
steps (luma; two box-filter passes and a decimation to 64x64; a 16x16 DCT;
each coefficient against their median), the filters and decimation folded
into two matrix products: the same bits and quality as ``pdqhash`` for the
same pixels (tested), in a few ms for a 1080x1920 frame instead of about 90
(``pdqhash`` converts to luma in float64 numpy). That makes it cheap
to hash what vPDQ hashes: the decoded frame at full size, before
``max_frame_side`` shrinks it (a 512-pixel copy was a median 8 and up to 52
bits from vPDQ's reference hashes; full size 2: ``bench/vpdq_reference.py``),
so hashes from other vPDQ tools can be matched.

Each sampled frame gets:

- ``pdq``: the whole frame's hash (vPDQ's), and its quality (0-100; flat,
  featureless frames score low and are not used for matching);
- ``centre`` and ``regions``: hashes of the central ``CENTRE`` and
  ``CENTRES`` shares (PDQ is not robust to cropping: a 5% crop moves a hash
  40-55 bits, so a cropped and rescaled copy matches one of these), and of the
  frame's content box when it sits inside a frame of other things (a colour,
  a blurred copy of itself, another clip: ``content_boxes``);
- ``chroma``: the mean colour without brightness of its content (PDQ sees only luminance);
- for queries only (not stored): the mirror image's hashes (PDQ's dihedral
  trick on the DCT, free), and the whole-frame hashes of the frames between
  the samples (``FrameHasher``: ``neighbours``), so that a copy trimmed by a
  fraction of a second, sped up or re-encoded at another frame rate, sampled
  at other instants, still finds its frames.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from workers.reposts.matching import MIN_QUALITY
from workers.video.sampling import Frame, open_sampled

CENTRE = 0.95  # the central share of each side hashed as the frame's second hash (crops of 3-7%)
CENTRES = (0.85,)  # harder crops (10-18%): hashed as regions

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # PDQ's luma weights (BT.601)

Box = tuple[int, int, int, int]  # top, bottom, left, right (pixels, end exclusive)


# --- PDQ --------------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _taps(n: int) -> np.ndarray:
    """(64, n): PDQ's two box-filter passes along one side of ``n`` pixels (window
    ``ceil(n / 128)``, shrinking at the edges), then its decimation to 64 samples, as one matrix."""
    window = (n + 127) // 128
    half = (window + 2) // 2
    ends = np.arange(n)
    lo, hi = np.maximum(ends - (window - half), 0), np.minimum(ends + half - 1, n - 1)
    at = ((np.arange(64) + 0.5) * n / 64).astype(int)
    # The second pass at ``at`` averages the first pass's outputs k in its window, each the mean of lo[k]..hi[k]:
    # added up as steps (+w at lo[k], -w after hi[k]) then summed along the row.
    rows, ks = np.nonzero((ends[None, :] >= lo[at][:, None]) & (ends[None, :] <= hi[at][:, None]))
    weight = 1.0 / (hi[ks] - lo[ks] + 1) / (hi[at[rows]] - lo[at[rows]] + 1)
    steps = np.zeros((64, n + 1))
    np.add.at(steps, (rows, lo[ks]), weight)
    np.add.at(steps, (rows, hi[ks] + 1), -weight)
    return np.cumsum(steps, axis=1)[:, :n].astype(np.float32)


# PDQ's DCT rows: frequencies 1-16 of 64 samples (the constant term left out).
_DCT = (np.sqrt(2 / 64) * np.cos(np.pi / 128 * np.outer(np.arange(1, 17), 2 * np.arange(64) + 1))).astype(np.float32)
# A left-right mirror negates the odd column frequencies (1, 3, ... = even indices).
_MIRROR_SIGNS = np.where(np.arange(16) % 2 == 0, -1, 1).astype(np.float32)


def luma_of(image: np.ndarray) -> np.ndarray:
    """PDQ's luminance of an RGB image, float32; a grey (HxW) image is taken as it is."""
    if image.ndim == 2:
        return image.astype(np.float32)
    return cv2.transform(image.astype(np.float32), _LUMA[None, :])


def _bits(dct: np.ndarray) -> str:
    """64 hex digits: bit ``16 i + j`` set when coefficient (i, j) is above the median
    (the lower one of the 256), most significant bit first, as PDQ writes them."""
    flat = dct.ravel()
    bits = flat > np.partition(flat, 127)[127]
    return np.packbits(bits[::-1].astype(np.uint8)).tobytes().hex()


def pdq_of(luma: np.ndarray) -> tuple[str, str, int]:
    """(hash, hash of the left-right mirror image, quality) of a luma image, as PDQ computes them."""
    h, w = luma.shape
    if h < 5 or w < 5:
        return "0" * 64, "0" * 64, 0
    # OpenCV's product, not numpy's: OpenBLAS threads fight the other workers on a busy host (5-30x slower).
    luma = np.ascontiguousarray(luma, dtype=np.float32)
    small = cv2.gemm(cv2.gemm(_taps(h), luma, 1, None, 0), _taps(w), 1, None, 0, flags=cv2.GEMM_2_T)
    steps = np.trunc((small[:-1] - small[1:]) * 100 / 255).astype(np.int64), np.trunc((small[:, :-1] - small[:, 1:]) * 100 / 255)
    quality = min(100, int(np.abs(steps[0]).sum() + np.abs(steps[1]).astype(np.int64).sum()) // 90)
    dct = _DCT @ small @ _DCT.T
    return _bits(dct), _bits(dct * _MIRROR_SIGNS[None, :]), quality


def bits_to_hex(bits: np.ndarray) -> str:
    return np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes().hex()


# --- regions ------------------------------------------------------------------------------

_DETAIL_SIDE = 160  # regions are looked for in a copy this size (longest side), then placed to the pixel
_FLAT = 0.2  # rows/columns with less fine detail than this share of the picture's are border (a colour, a blur)
_EDGE = 6.0  # grey levels: a smaller step between two rows (columns) is no edge
_SUPPORT = 0.7  # a box side is an edge along at least this share of its length
_BOXES = 2  # content boxes hashed per frame, at most


def _trimmed(detail: np.ndarray) -> tuple[int, int]:
    """The span left when the low-detail ends of a profile are cut off."""
    rich = np.flatnonzero(detail >= _FLAT * max(float(np.percentile(detail, 90)), 1e-6))
    return (int(rich[0]), int(rich[-1]) + 1) if len(rich) else (0, len(detail))


def _edges(steps: np.ndarray) -> np.ndarray:
    """Where a step between rows is an edge: not small, and about the largest of the two rows
    on either side (a boundary between two pictures; inside one picture steps come and go),
    along rows with gaps of up to 4 pixels closed."""
    padded = np.pad(steps, ((2, 2), (0, 0)))
    nearby = np.max([padded[i : i + len(steps)] for i in range(5)], axis=0)
    edges = ((steps > _EDGE) & (steps >= 0.8 * nearby)).astype(np.uint8)
    return cv2.dilate(edges, np.ones((1, 5), np.uint8)).astype(bool)  # gaps of up to 4 pixels closed


def _lines(edges: np.ndarray) -> list[int]:
    """Positions (between row i and i+1) where a straight edge runs along at least 30% of
    the other side (its longest run), longest first; at most five."""
    run, longest = np.zeros(len(edges), int), np.zeros(len(edges), int)
    for column in edges.T:  # the run of edges ending at each column, per row
        run = (run + 1) * column
        longest = np.maximum(longest, run)
    found = [(int(n), int(i) + 1) for i, n in enumerate(longest) if n >= 0.3 * edges.shape[1]]
    return [i for _, i in sorted(found, reverse=True)[:5]]


def _placed(luma: np.ndarray, at: int, start: int, end: int, reach: int) -> int:
    """Where, within ``reach`` rows of ``at``, the strongest step between rows lies along
    columns ``start:end`` (full size): a box placed to the pixel (PDQ moves 8 bits a pixel)."""
    lo, hi = max(1, at - reach), min(len(luma) - 1, at + reach)
    if hi <= lo or at in (0, len(luma)):
        return at
    band = luma[lo - 1 : hi + 1, start:end]
    return lo + int(np.argmax(np.abs(np.diff(band, axis=0)).mean(1)))


def content_boxes(luma: np.ndarray) -> list[Box]:
    """Where the picture sits when a frame holds it smaller, among other things: inside borders
    without detail (a colour, a blurred copy of itself), or inside straight edges (a picture
    over another clip). At most ``_BOXES`` boxes of 20-85% of the frame, in full-size pixels."""
    h, w = luma.shape
    scale = _DETAIL_SIDE / max(h, w)
    small = cv2.resize(luma.astype(np.float32), (max(8, round(w * scale)), max(8, round(h * scale))), interpolation=cv2.INTER_AREA)
    sh, sw = small.shape
    down, across = _edges(np.abs(np.diff(small, axis=0))), _edges(np.abs(np.diff(small, axis=1)).T)
    fine = np.abs(small - cv2.blur(small, (3, 3)))  # detail a blur takes away (and a colour never had)
    trimmed = (*_trimmed(fine.mean(1)), *_trimmed(fine.mean(0)))
    rows, cols = [0, *_lines(down), sh], [0, *_lines(across), sw]

    def support(edges: np.ndarray, at: int, start: int, end: int, limit: int) -> float:
        """How much of a box side is an edge (a side on the frame's edge: none, but it counts as one)."""
        return 1.0 if at in (0, limit) else float(edges[at - 1, start:end].mean())

    framed = []  # (edges that are lines, not the frame's; how clearly; box): the more, the surer
    for top in rows:
        for bottom in (r for r in rows if r > top):
            for left in cols:
                for right in (c for c in cols if c > left):
                    sides = [
                        support(down, top, left, right, sh),
                        support(down, bottom, left, right, sh),
                        support(across, left, top, bottom, sw),
                        support(across, right, top, bottom, sw),
                    ]
                    if min(sides) >= _SUPPORT:
                        lines = sum(int(x) for x in (top > 0, bottom < sh, left > 0, right < sw))
                        framed.append((lines, sum(sides), (top, bottom, left, right)))
    kept: list[Box] = []
    for box in [trimmed, *(box for *_, box in sorted(framed, reverse=True))]:
        share = (box[1] - box[0]) * (box[3] - box[2]) / (sh * sw)
        if 0.2 <= share <= 0.85 and not any(_overlap(box, k) > 0.8 for k in kept):
            kept.append(box)
    reach = int(np.ceil(1 / scale)) + 1
    out: list[Box] = []
    for top, bottom, left, right in kept[:_BOXES]:
        top, bottom = round(top / scale), min(h, round(bottom / scale))
        left, right = round(left / scale), min(w, round(right / scale))
        top, bottom = _placed(luma, top, left, right, reach), _placed(luma, bottom, left, right, reach)
        left, right = _placed(luma.T, left, top, bottom, reach), _placed(luma.T, right, top, bottom, reach)
        out.append((top, bottom, left, right))
    return out


def _overlap(a: Box, b: Box) -> float:
    """Intersection over union of two boxes."""
    top, bottom, left, right = max(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), min(a[3], b[3])
    inter = max(0, bottom - top) * max(0, right - left)
    area = (a[1] - a[0]) * (a[3] - a[2]) + (b[1] - b[0]) * (b[3] - b[2]) - inter
    return inter / area if area else 0.0


def _centre(h: int, w: int, share: float) -> Box:
    dh, dw = round(h * (1 - share) / 2), round(w * (1 - share) / 2)
    return dh, h - dh, dw, w - dw


# --- frames -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FrameHash:
    index: int  # frame number in the video
    timestamp: float
    pdq: str  # 64 hex digits (256 bits): the whole frame, as vPDQ hashes it
    centre: str  # the hash of the frame's centre (CENTRE of each side)
    quality: int  # PDQ quality, 0-100
    chroma: int  # mean chromaticity of its content, packed (see ``chroma_of``)
    regions: tuple[str, ...] = ()  # harder crops (CENTRES), content boxes (of quality >= MIN_QUALITY)
    mirror: tuple[str, ...] | None = None  # (pdq, centre, *regions) of the left-right mirror (queries only; not stored)
    # (hash, mirror hash) of the frames between this sample and the next ones (queries only; filled as they are decoded)
    neighbours: list[tuple[str, str]] = field(default_factory=list, compare=False)

    @property
    def stored(self) -> tuple[str, ...]:
        """The hashes stored (and indexed) for the frame."""
        return self.pdq, self.centre, *self.regions

    @property
    def probes(self) -> tuple[str, ...]:
        """The hashes a lookup probes the index with: the stored ones, mirrored too, and one
        neighbour (the farthest before the sample): a copy sampled at other instants is found
        by it, and the comparison then uses them all."""
        return *self.stored, *(self.mirror or ()), *(self.neighbours[0] if self.neighbours else ())

    @property
    def frame(self) -> tuple:
        """The frame as ``workers.reposts.matching`` compares a query: (chroma, its hashes, its neighbours')."""
        return self.chroma, *self.stored, *(n[0] for n in self.neighbours)

    @property
    def mirror_frame(self) -> tuple | None:
        return (self.chroma, *self.mirror, *(n[1] for n in self.neighbours)) if self.mirror else None


def chroma_of(image: np.ndarray) -> int:
    """The mean colour without its brightness (each channel's share of the sum, 0-255), packed in
    24 bits: a black caption band or a re-encode hardly moves it; a red copy of a blue video does."""
    mean = np.array(cv2.mean(np.ascontiguousarray(image))[:3])
    r, g, b = (np.round(255 * mean / max(float(mean.sum()), 1e-6))).astype(int).clip(0, 255)
    return int(r) << 16 | int(g) << 8 | int(b)


def hash_frame(frame: Frame) -> FrameHash:
    """A sampled frame's hashes (RGB, at full size)."""
    image = frame.image
    luma = luma_of(image)
    h, w = luma.shape
    pdq, mirror, quality = pdq_of(luma)
    centre = pdq_of(_cut(luma, _centre(h, w, CENTRE)))
    boxes = content_boxes(luma) if quality >= MIN_QUALITY else []
    regions = [pdq_of(_cut(luma, _centre(h, w, share))) for share in CENTRES] + [pdq_of(_cut(luma, box)) for box in boxes]
    regions = [r for r in regions if r[2] >= MIN_QUALITY]
    colour = _cut(image, boxes[0]) if boxes else image
    return FrameHash(
        frame.index,
        frame.timestamp,
        pdq,
        centre[0],
        quality,
        chroma_of(colour),
        tuple(r[0] for r in regions),
        (mirror, centre[1], *(r[1] for r in regions)),
    )


def _cut(image: np.ndarray, box: Box) -> np.ndarray:
    top, bottom, left, right = box
    return image[top:bottom, left:right]


class FrameHasher:
    """Hashes a video's frames as they are sampled (a ``workers.video.sampling.FrameWatch``):
    each sampled frame at full size (``hash_frame``), and ``per_sample`` frames in each
    sampling step (1: none between) by their whole-frame hash, as neighbours of the nearest
    sample. Costs: ``per_sample`` times the frames decoded (as luma) and hashed; nothing more stored."""

    def __init__(self, into: list[FrameHash], per_sample: float = 1.0) -> None:
        self.into, self.per_sample = into, per_sample
        self._sample_of: dict[int, int] = {}  # wanted frame -> the sample it is a neighbour of
        self._between: dict[int, list[tuple[str, str]]] = {}  # sample -> its neighbours' (hash, mirror)

    def wants(self, index: int, step: int) -> bool:
        if self.per_sample <= 1 or index % max(1, round(step / self.per_sample)):
            return False
        self._sample_of[index] = round(index / step) * step
        return True

    def see(self, frame: Frame, sampled: bool) -> None:
        if sampled:
            hashes = hash_frame(frame)
            hashes.neighbours.extend(self._between.pop(frame.index, []))
            self._between[frame.index] = hashes.neighbours  # later neighbours land in its list
            self.into.append(hashes)
            return
        pdq, mirror, quality = pdq_of(frame.image)
        if quality >= MIN_QUALITY:
            self._between.setdefault(self._sample_of.pop(frame.index), []).append((pdq, mirror))


def hash_file(path: str | Path, rate: float = 1.0, per_sample: float = 1.0) -> list[FrameHash]:
    """The hashes of a video file's frames sampled at ``rate`` per second, with ``per_sample``
    frames hashed per sampling step (``FrameHasher``): what the pipeline and ``scan`` store and query."""
    hashes: list[FrameHash] = []
    with open_sampled(path, rate, 64, watch=FrameHasher(hashes, per_sample)) as (_reader, frames):
        for _ in frames:
            pass
    return hashes
