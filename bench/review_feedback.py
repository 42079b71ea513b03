"""Classifier corrections on the seed data: train on half of the seed CSV,
scan both seed videos, review every sampled frame from what the videos show
(Trump.mp4: the target, Biden.mp4: not), retrain with the reviews, scan again;
print true and false positive frames before and after.

    python bench/review_feedback.py --workdir /tmp/review-bench

Needs ../shared (seed data, VGG16 weights); several CPU minutes. The
after-numbers are in-sample: the reviewed frames are the scanned frames.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT.parent / "shared" / "data" / "seed"
WEIGHTS = ROOT.parent / "shared" / "weights" / "vgg16_imagenet_notop.weights.h5"


def cli(env: dict, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "workers.cli.main", *args], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)}: exit {proc.returncode}\n{proc.stderr}")
    return proc.stdout


def scan(env: dict) -> dict[str, dict]:
    out = cli(env, "scan", str(SEED / "Trump.mp4"), str(SEED / "Biden.mp4"), "-t", "trump", "--all-frames", "--json")
    return {Path(r["video"]).name: r for r in map(json.loads, (l for l in out.splitlines() if l.startswith("{")))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("data/review-bench"))
    args = parser.parse_args()
    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TT_DATA_DIR": str(work / "data"), "TT_MODELS_DIR": str(work / "models"),
           "TT_VGG16_WEIGHTS": str(WEIGHTS), "TT_VGG16_PREPROCESSING": "torch", "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("TT_DATABASE_URL", None)
    rows = list(csv.DictReader((SEED / "mapping_trump.csv").open()))
    rows.sort(key=lambda r: int("".join(c for c in r["Image_ID"] if c.isdigit()) or 0))
    half = work / "half.csv"
    with half.open("w", newline="") as fh:  # every other block of 20 frames: both halves span the captures
        writer = csv.DictWriter(fh, fieldnames=["Image_ID", "Class"])
        writer.writeheader()
        writer.writerows(r for i, r in enumerate(rows) if (i // 20) % 2 == 0)
    train = ["target", "train", "trump", "--labels", str(half), "--images", str(SEED / "images"), "--folds", "0"]
    cli(env, *train)
    before = scan(env)

    for key, value in env.items():
        if key.startswith("TT_"):
            os.environ[key] = value
    sys.path.insert(0, str(ROOT))
    from workers.review.service import mark_frames
    from workers.settings import get_settings
    from workers.storage.db import session_scope
    from workers.storage.models import Detection, Video

    settings = get_settings()
    with session_scope(settings.resolved_database_url) as s:
        dets = [(d.id, Path(d.video.source).name, [f.frame_index for f in d.frame_scores])
                for d in s.query(Detection).join(Video).all()]
    for det_id, name, frames in dets:
        mark_frames(settings, det_id, frames, "target" if name == "Trump.mp4" else "not_target", reviewer="bench")
    cli(env, *train, "--with-reviews")
    after = scan(env)
    report = {
        "before": {k: f"{v['positive_frames']}/{v['frames']} {v['verdict']}" for k, v in before.items()},
        "after": {k: f"{v['positive_frames']}/{v['frames']} {v['verdict']}" for k, v in after.items()},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
