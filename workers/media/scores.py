"""Score files: the score stage's output, read by the verdict stage (JSON: Python's float
repr round-trips exactly)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from workers.detect.base import Target
from workers.detect.scoring import TargetSpec
from workers.verdict import FrameScore


def encode_scores(targets: Sequence[Target | TargetSpec], scores: Mapping[str, Sequence[FrameScore]], total_frames: int) -> bytes:
    """The score stage's output: each target's spec and per-frame scores (JSON, floats exact)."""
    return json.dumps(
        {
            "total_frames": total_frames,
            "targets": [
                {
                    "spec": (t if isinstance(t, TargetSpec) else TargetSpec.of(t)).to_dict(),
                    "scores": [[s.index, s.timestamp, s.score, list(s.box) if s.box else None, s.reused_from] for s in scores[t.name]],
                }
                for t in targets
            ],
        }
    ).encode()


def decode_scores(data: bytes) -> tuple[list[TargetSpec], dict[str, list[FrameScore]], int]:
    """Inverse of ``encode_scores``: (specs, scores by target name, sampled frames in the video)."""
    doc = json.loads(data)
    specs = [TargetSpec.from_dict(entry["spec"]) for entry in doc["targets"]]
    scores = {
        spec.name: [
            FrameScore(int(i), float(t), float(s), tuple(box) if box else None, None if src is None else int(src))
            for i, t, s, box, src in entry["scores"]
        ]
        for spec, entry in zip(specs, doc["targets"], strict=True)
    }
    return specs, scores, int(doc["total_frames"])
