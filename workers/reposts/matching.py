"""Repost matching on plain hashes: vPDQ's frame rules, and a video rule of this project's own.

Frames (vPDQ's rules, ThreatExchange's defaults):

- two frames match when their PDQ hashes are at most ``MAX_DISTANCE`` (31)
  bits apart, and both have quality at least ``MIN_QUALITY`` (50);
- a video is a bag of its distinct frames: repeats (a still shot sampled four
  times) count once, on both sides (``distinct``).

This project's frames carry more than vPDQ's one hash (``workers.reposts.hashing``):
hashes of regions (crops, content boxes) and, for a query, of the frames
between its samples. Two frames are as close as their closest pair of hashes,
if their colours agree (PDQ itself sees only luminance).

Videos (``LinkRule``): with Q the new video's distinct frames and C an earlier
video's, ``query_fraction`` is the share of Q matching some frame of C and
``candidate_fraction`` the share of C matching some frame of Q.

- ``mutual`` (this project's rule, the default): both shares reach
  ``repost_link_at`` (0.5). Trims and speed changes keep both high; a video that
  shares one shot with another, or a long compilation holding a short clip, does not link.
- ``vpdq`` (vPDQ's defaults): the query share reaches 80% (and the other 0%): every
  clip cut out of a stored video links to it, however short.

Either way the link's strength is the weaker share (``VideoMatch.strength``): what
decides whether a repost takes its original's verdicts.

Also the multi-index-hashing arithmetic behind the stored index: a hash is
cut into 16 chunks of 16 bits; two hashes at most 31 bits apart differ by at
most one bit in some chunk (pigeonhole: 16 chunks x 2 bits > 31), so a
lookup probes each chunk's value and its 16 one-bit neighbours, and checks
the exact distance of what it finds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MAX_DISTANCE = 31
MIN_QUALITY = 50
CHUNKS = 16
CHUNK_BITS = 16
VPDQ_QUERY_SHARE = 0.8  # ThreatExchange's VPDQ_QUERY_MATCH_THRESHOLD_PERCENT
VPDQ_COMPARED_SHARE = 0.0  # ThreatExchange's VPDQ_INDEX_MATCH_THRESHOLD_PERCENT
RULES = ("mutual", "vpdq")


@dataclass(frozen=True)
class VideoMatch:
    query_fraction: float  # share of the new video's frames that match the other video
    candidate_fraction: float  # share of the other video's frames that match the new one
    mirrored: bool = False

    @property
    def strength(self) -> float:
        """The weaker direction: what both shares are at least."""
        return min(self.query_fraction, self.candidate_fraction)


@dataclass(frozen=True)
class LinkRule:
    """When a match links a new video to an earlier one (see the module docstring)."""

    name: str = "mutual"
    link_at: float = 0.5

    def links(self, match: VideoMatch) -> bool:
        if self.name == "vpdq":
            return match.query_fraction >= VPDQ_QUERY_SHARE and match.candidate_fraction >= VPDQ_COMPARED_SHARE
        return match.strength >= self.link_at

    @classmethod
    def of(cls, settings) -> LinkRule:
        return cls(settings.repost_rule, settings.repost_link_at)


def to_bits(hashes: Sequence[str]) -> np.ndarray:
    """Hex hashes as an (n, 256) array of 0/1."""
    if not hashes:
        return np.zeros((0, CHUNKS * CHUNK_BITS), np.uint8)
    raw = np.frombuffer(b"".join(bytes.fromhex(h) for h in hashes), np.uint8).reshape(len(hashes), -1)
    return np.unpackbits(raw, axis=1)


def distances(a: Sequence[str], b: Sequence[str]) -> np.ndarray:
    """Hamming distances, an (len(a), len(b)) array."""
    x, y = to_bits(a).astype(np.int16), to_bits(b).astype(np.int16)
    if not len(x) or not len(y):
        return np.zeros((len(x), len(y)), np.int16)
    # |x - y| summed = x + y - 2 x.y for 0/1 vectors
    return x.sum(1)[:, None] + y.sum(1)[None, :] - 2 * (x @ y.T)


MAX_CHROMA_DIFFERENCE = 32  # of 255: how far two matching frames' mean chromaticity may be apart

# Per frame: (chroma, its hashes ...): ``chroma`` (see ``workers.reposts.hashing.chroma_of``) is the
# frame's mean colour without its brightness; PDQ sees only luminance, so without it a red and a
# blue copy of the same shapes would match. The first hash is the whole frame's (vPDQ's); frames
# may carry different numbers of hashes.
Frames = Sequence[tuple]


def _chroma(frames: Frames) -> np.ndarray:
    packed = np.array([f[0] for f in frames], np.int64)
    return np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], axis=1)


def _starts(frames: Frames) -> np.ndarray:
    return np.cumsum([0] + [len(f) - 1 for f in frames[:-1]])


def frame_distances(query: Frames, candidate: Frames) -> np.ndarray:
    """(len(query), len(candidate)) array: the closest pair of hashes of each two frames;
    pairs whose colours differ (``MAX_CHROMA_DIFFERENCE``) get a distance past any match."""
    if not query or not candidate:
        return np.zeros((len(query), len(candidate)), np.int16)
    flat = distances([h for f in query for h in f[1:]], [h for f in candidate for h in f[1:]])
    closest = np.minimum.reduceat(np.minimum.reduceat(flat, _starts(query), axis=0), _starts(candidate), axis=1)
    colour = np.abs(_chroma(query)[:, None, :] - _chroma(candidate)[None, :, :]).max(-1)
    return np.where(colour <= MAX_CHROMA_DIFFERENCE, closest, 256)


def distinct(frames: Frames) -> list[tuple]:
    """The frames with repeats dropped (the same colour and whole-frame hash: a still shot
    sampled again), in order: vPDQ counts each distinct frame once."""
    seen: dict[tuple, tuple] = {}
    for f in frames:
        seen.setdefault(tuple(f[:2]), tuple(f))
    return list(seen.values())


def usable(frames: Frames, qualities: Sequence[int]) -> list[tuple]:
    """The distinct frames of good-enough quality, in order (vPDQ ignores repeats and poor frames)."""
    return distinct([f for f, q in zip(frames, qualities, strict=True) if q >= MIN_QUALITY])


def match_videos(query: Frames, candidate: Frames, max_distance: int = MAX_DISTANCE) -> tuple[float, float]:
    """(share of ``query`` frames matching some ``candidate`` frame, and the reverse), each
    side's repeats counted once (``distinct``); both already of good quality."""
    query, candidate = distinct(query), distinct(candidate)
    if not query or not candidate:
        return 0.0, 0.0
    close = frame_distances(query, candidate) <= max_distance
    return float(close.any(1).mean()), float(close.any(0).mean())


def best_match(query: Frames, mirrored: Frames, candidate: Frames) -> VideoMatch:
    """The match of the video as it is, or mirrored when that matches better."""
    straight = VideoMatch(*match_videos(query, candidate))
    flipped = VideoMatch(*match_videos(mirrored, candidate), mirrored=True) if mirrored else None
    return flipped if flipped is not None and flipped.strength > straight.strength else straight


def chunk_values(pdq: str) -> list[int]:
    """The hash's 16 chunks of 16 bits, most significant first."""
    raw = bytes.fromhex(pdq)
    return [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]


def chunk_key(position: int, value: int) -> int:
    """One stored index entry: which chunk, and its value, in one integer."""
    return (position << CHUNK_BITS) | value


def index_keys(*hashes: str) -> list[int]:
    """The index entries stored for a frame's hashes (one per chunk and hash, repeats once)."""
    return sorted({chunk_key(p, v) for h in hashes for p, v in enumerate(chunk_values(h))})


def probe_keys(pdq: str) -> list[int]:
    """The index entries a lookup for hashes within ``MAX_DISTANCE`` of ``pdq`` must probe:
    each chunk's value and its one-bit neighbours (16 x 17 keys)."""
    keys = []
    for position, value in enumerate(chunk_values(pdq)):
        keys.append(chunk_key(position, value))
        keys.extend(chunk_key(position, value ^ (1 << bit)) for bit in range(CHUNK_BITS))
    return keys
