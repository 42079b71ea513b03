"""Forward passes shared across videos: batch fill and frames/s with 1, 4 and 16 videos in flight.

The videos: ``--videos N`` frame lists of ``--frames F`` frames each, made from the
seed videos' frames (1 frame/s of Trump.mp4 and Biden.mp4, each copy mirrored
and brightness-shifted differently, so that no two videos are the same) when
../shared is there, else generated noise frames; all resized for the backbone
up front, as the pipeline's frame stage stores them, so that only scoring is
timed. VGG16 with the real weights when ../shared has them (else random
weights). The target: ``--models DIR --target NAME`` (a saved one), else a
stand-in that reads the same VGG16 features and never decides early, so that
every frame is scored and the frame counts are the same in every run.

Runs, in this order, in one process:

- ``per-video``: ``collect_scores`` one video after another (``batch_size`` frames a pass)
- ``in flight K``: K threads, each scoring one video at a time through one
  ``SharedPasses`` (what a score worker with ``--concurrency K`` does), until all
  videos are scored

Prints, per run: passes, frames per pass (batch fill), scored frames/s, and the
ratio of frames/s to the per-video run's; exits 1 if any video's scores differ
from its per-video scores.

    python bench/score_batching.py                                   # 32 videos x 32 frames, K = 1 4 16
    python bench/score_batching.py --batch-frames 256 --in-flight 1 4 16 --precision float32
    python bench/score_batching.py --videos 4 --frames 4 --in-flight 1 2 --weights random   # smoke
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("TT_SHARED_DIR", ROOT.parent / "shared"))
SEED = SHARED / "data" / "seed"
WEIGHTS = SHARED / "weights" / "vgg16_imagenet_notop.weights.h5"

from workers.detect.backbone import INPUT_SIZE, VGG16Backbone, resize_frame  # noqa: E402
from workers.detect.base import Target  # noqa: E402
from workers.detect.scoring import collect_scores  # noqa: E402
from workers.detect.shared_passes import SharedPasses  # noqa: E402
from workers.verdict import FrameScore, VerdictRule  # noqa: E402
from workers.video.sampling import Frame  # noqa: E402


class FeatureMean(Target):
    """Stand-in target: the mean of the VGG16 features; its rule never decides early."""

    kind = "classifier"
    extractor_key = "vgg16"

    def check_extractor(self, extractor) -> None:
        pass

    def score(self, extracted, indices, timestamps):
        means = np.asarray(extracted).reshape(len(indices), -1).mean(axis=1) if len(indices) else []
        return [FrameScore(int(i), float(t), float(m)) for i, t, m in zip(indices, timestamps, means)]

    def config(self) -> dict:
        return {}

    def save_artifacts(self, folder) -> None:
        pass

    @classmethod
    def from_bundle(cls, meta, folder):
        raise NotImplementedError

    def fingerprint(self) -> bytes:
        return b""


def source_frames() -> list[np.ndarray]:
    """Backbone-sized RGB frames: the seed videos' at 1 frame/s, else noise."""
    if SEED.is_dir():
        from workers.video.sampling import open_sampled

        out = []
        for name in ("Trump.mp4", "Biden.mp4"):
            with open_sampled(SEED / name, 1.0, 1280) as (_reader, frames):
                out.extend(resize_frame(f.image) for f in frames)
        return out
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (*INPUT_SIZE[::-1], 3), dtype=np.uint8) for _ in range(64)]


def make_videos(n: int, frames: int) -> list[list[Frame]]:
    """``n`` distinct videos of ``frames`` frames (see the module docstring)."""
    pool = source_frames()
    videos = []
    for v in range(n):
        shift = (v * 7) % 40 - 20
        out = []
        for i in range(frames):
            image = pool[(v * 5 + i) % len(pool)]
            image = image[:, ::-1] if v % 2 else image
            image = np.clip(image.astype(np.int16) + shift, 0, 255).astype(np.uint8)
            out.append(Frame(i * 30, float(i), np.ascontiguousarray(image)))
        videos.append(out)
    return videos


class CountingBackbone:
    """The backbone, counting passes and frames (``extract`` as VGG16Backbone's)."""

    key = "vgg16"

    def __init__(self, backbone: VGG16Backbone) -> None:
        self.backbone, self.passes, self.frames = backbone, 0, 0

    def extract(self, images):
        self.passes += 1
        self.frames += len(images)
        return self.backbone.extract(images)


def per_video(videos, targets, backbone, args) -> tuple[dict, list]:
    counted = CountingBackbone(backbone)
    started = time.perf_counter()
    scores = [collect_scores(v, targets, {"vgg16": counted}, args.batch_size, args.early, duplicate_tolerance=args.duplicate_tolerance)
              for v in videos]
    return _row("per-video", counted, time.perf_counter() - started, scores), scores


def in_flight(k: int, videos, targets, backbone, args) -> tuple[dict, list]:
    counted = CountingBackbone(backbone)
    passes = SharedPasses(args.batch_frames, args.batch_size, args.wait_ms / 1000)
    todo: queue.Queue = queue.Queue()
    for i, v in enumerate(videos):
        todo.put((i, v))
    scores: list = [None] * len(videos)

    def worker():
        while True:
            try:
                i, v = todo.get_nowait()
            except queue.Empty:
                return
            passes.expect()  # as a score task does when it starts (task_prerun)
            scores[i] = passes.collect_scores(v, targets, {"vgg16": counted}, early_verdict=args.early,
                                              duplicate_tolerance=args.duplicate_tolerance)

    threads = [threading.Thread(target=worker) for _ in range(k)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return _row(f"in flight {k}", counted, time.perf_counter() - started, scores), scores


def _row(name: str, counted: CountingBackbone, seconds: float, scores) -> dict:
    scored = sum(sum(s.reused_from is None for s in per_target) for video in scores for per_target in video.values())
    return {
        "run": name, "passes": counted.passes, "frames_per_pass": round(counted.frames / max(1, counted.passes), 1),
        "scored_frames": counted.frames, "seconds": round(seconds, 2), "frames_per_s": round(counted.frames / seconds, 1),
        "scores": scored,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=32)
    parser.add_argument("--frames", type=int, default=32, help="frames per video")
    parser.add_argument("--in-flight", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--batch-size", type=int, default=16, help="frames per chunk (TT_BATCH_SIZE)")
    parser.add_argument("--batch-frames", type=int, default=256, help="most frames per shared pass (TT_SCORE_BATCH_FRAMES)")
    parser.add_argument("--wait-ms", type=float, default=20.0, help="TT_SCORE_BATCH_WAIT_MS")
    parser.add_argument("--weights", default=str(WEIGHTS) if WEIGHTS.is_file() else "random")
    parser.add_argument("--preprocessing", default="torch")
    parser.add_argument("--precision", default="auto", choices=["auto", "float32", "bfloat16", "int8"])
    parser.add_argument("--models", type=Path, help="models folder of a saved target (else a stand-in target)")
    parser.add_argument("--target", default="trump")
    parser.add_argument("--early", action="store_true", help="early verdict on (a saved target's rule decides)")
    parser.add_argument("--duplicate-tolerance", type=float, default=0.0)
    parser.add_argument("--json", type=Path, help="write the rows here too")
    args = parser.parse_args()

    backbone = VGG16Backbone(args.weights, args.preprocessing if args.weights != "random" else None, precision=args.precision)
    if args.models:
        from workers.targets.bundle import load_target

        targets = [load_target(args.models, args.target)]
    else:
        targets = [FeatureMean("features", 1e9, VerdictRule(1.0, 1))]  # never positive, never decided early
    videos = make_videos(args.videos, args.frames)
    backbone.warm(args.batch_frames)  # every power of two up to the largest pass: no tracing in the clock
    print(f"{args.videos} videos x {args.frames} frames; chunks of {args.batch_size}, passes of up to {args.batch_frames}; "
          f"weights {Path(args.weights).name}, precision {backbone.precision}", file=sys.stderr)

    base, reference = per_video(videos, targets, backbone, args)
    rows, differ = [base], []
    for k in args.in_flight:
        row, scores = in_flight(k, videos, targets, backbone, args)
        rows.append(row)
        if scores != reference:
            differ.append(row["run"])
    print(f"{'run':<14}{'passes':>8}{'frames/pass':>13}{'scored':>8}{'s':>9}{'frames/s':>10}{'x per-video':>13}")
    for row in rows:
        ratio = row["frames_per_s"] / base["frames_per_s"] if base["frames_per_s"] else 0.0
        row["x_per_video"] = round(ratio, 2)
        print(f"{row['run']:<14}{row['passes']:>8}{row['frames_per_pass']:>13}{row['scored_frames']:>8}"
              f"{row['seconds']:>9}{row['frames_per_s']:>10}{ratio:>13.2f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    if differ:
        print(f"scores differ from per-video scoring in: {', '.join(differ)}", file=sys.stderr)
        return 1
    print("every run's scores equal per-video scoring's", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
