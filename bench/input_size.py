"""VGG16 input size: grouped validation accuracy, backbone frames/s and seed-video verdicts at 224, 192, 160.

For each ``--sizes`` side, in one process and one run (so that the ratios to 224 compare
numbers measured on the same, possibly busy, machine):

- ``accuracy``: ``target train``'s own code (``workers.services.training``: the default
  pooled head, ``--augment`` copies, grouped ``--folds``-fold validation) on the seed CSV,
  the target saved as ``trumpSIZE``; backbone features cached per size in
  ``--work``/data/cache (a second run skips the VGG16 passes: ``features s`` near 0);
- ``f/s``: the bare VGG16 forward pass at that input on batches of 16 for ``--seconds``
  (``--precision``, float32 by default; training features are always float32);
- the verdicts and positive frames of ``trumpSIZE`` on the seed ``Trump.mp4`` and
  ``Biden.mp4``, every sampled frame scored (``scan --all-frames``'s code).

Prints one row per size and the ratios to the first size (224 by default): accuracy
difference, frames/s ratio. Needs ../shared (seed CSV and images, VGG16 weights: torch
preprocessing).

    python bench/input_size.py                                  # the README numbers (~15 min on 2 busy cores)
    python bench/input_size.py --precision bfloat16             # frames/s and verdicts in bfloat16
    python bench/input_size.py --every 2 --augment 0 --seconds 5   # the half-size numbers in README (~4.5 min)
    python bench/input_size.py --every 12 --folds 2 --epochs 2 --seconds 2 --augment 0   # smoke (~2 min)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from run import SEED, WEIGHTS, cpu_summary  # noqa: E402  (bench/run.py: seed paths, the CPU line)

VIDEOS = ("Trump.mp4", "Biden.mp4")


def settings_for(work: Path, precision: str, weights: Path):
    from workers.settings import Settings

    return Settings(
        _env_file=None, data_dir=work / "data", models_dir=work / "models", vgg16_weights=str(weights),
        vgg16_preprocessing="torch", vgg16_precision=precision, database_url=f"sqlite:///{work / 'scan.db'}",
    )


def train(settings, side: int, args) -> tuple[dict, float, float]:
    """Train ``trumpSIDE`` with ``target train``'s code; returns its metrics, features and training seconds."""
    from workers.services.training import BACKBONE_PHASE, TrainRequest, plan_training, run_training

    request = TrainRequest(
        name=f"trump{side}", images=SEED / "images", labels=SEED / "mapping_trump.csv", epochs=args.epochs,
        augment=args.augment, folds=args.folds, input_size=side,
    )
    plan = plan_training(settings, request)
    plan.data.examples[:] = plan.data.examples[:: args.every]  # --every N: a smoke run's subset

    class Clock:
        """When the backbone phase ended (the rest is the heads' training)."""

        features_done = None

        def advance(self, phase, n=1, detail=None):
            if phase == BACKBONE_PHASE:
                self.features_done = time.perf_counter()

        def update(self, phase, done, detail=None):
            pass

    clock, start = Clock(), time.perf_counter()
    result = run_training(settings, plan, clock)
    end = time.perf_counter()
    features_done = clock.features_done or start
    return result.target.metrics, features_done - start, end - features_done


def frames_per_second(settings, side: int, seconds: float, batch: int = 16) -> float:
    """The bare forward pass at ``side`` on random preprocessed batches, for ``seconds``."""
    from workers.detect.backbone import VGG16Backbone

    backbone = VGG16Backbone(settings.vgg16_weights, "torch", precision=settings.vgg16_precision, input_size=(side, side))
    backbone.warm(batch)
    x = np.random.default_rng(0).normal(size=(batch, side, side, 3)).astype(np.float32)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or n == 0:
        backbone.features(x)
        n += batch
    return n / (time.perf_counter() - start)


def seed_verdicts(settings, side: int) -> dict[str, tuple[str, int, int]]:
    """video -> (verdict, positive frames, frames) for ``trumpSIDE``, every frame scored."""
    from workers.scan import Scanner

    scanner = Scanner.for_names(settings, [f"trump{side}"], all_frames=True)
    out = {}
    for path, rows in scanner.scan_files([SEED / v for v in VIDEOS], force=True):
        (row,) = rows
        if row.verdict == "failed":
            raise SystemExit(f"{path.name}: {row.error}")
        out[path.name] = (row.verdict, row.positive_frames, row.frames)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[224, 192, 160], help="input sides; ratios are to the first")
    ap.add_argument("--precision", default="float32", help="VGG16 precision for frames/s and the scans (float32, bfloat16, auto)")
    ap.add_argument("--seconds", type=float, default=15.0, help="seconds of forward passes per size")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--augment", type=int, default=1)
    ap.add_argument("--every", type=int, default=1, help="train on every Nth labelled image (smoke runs)")
    ap.add_argument("--work", type=Path, default=ROOT / "bench" / ".work" / "input_size")
    ap.add_argument("--json", type=Path, help="write the rows as JSON here")
    args = ap.parse_args()
    if not (SEED / "mapping_trump.csv").is_file() or not WEIGHTS.is_file():
        raise SystemExit(f"needs ../shared: {SEED} (seed CSV, images, videos) and {WEIGHTS}")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    settings = settings_for(args.work, args.precision, WEIGHTS)
    rows = []
    for side in args.sizes:
        metrics, feat_s, fit_s = train(settings, side, args)
        fps = frames_per_second(settings, side, args.seconds)
        verdicts = seed_verdicts(settings, side)
        rows.append({"size": side, "accuracy": metrics.get("accuracy"), "precision": metrics.get("precision"),
                     "recall": metrics.get("recall"), "train_images": metrics.get("train_images"),
                     "features_s": round(feat_s, 1), "heads_s": round(fit_s, 1), "fps": round(fps, 2),
                     "verdicts": verdicts})
        print(f"# {side}: done", json.dumps(rows[-1]), flush=True)
    base = rows[0]
    print(f"\nVGG16 {args.precision}, batch 16; grouped {args.folds}-fold validation, {args.epochs} epochs, "
          f"augment {args.augment}, every {args.every} image(s); cpu: {cpu_summary()}, ONEDNN_MAX_CPU_ISA={os.environ.get('ONEDNN_MAX_CPU_ISA', 'unset')}\n")
    print("| size | images | accuracy | precision | recall | features s | heads s | f/s | x f/s | d acc | "
          + " | ".join(f"{v} (pos/frames)" for v in VIDEOS) + " |")
    print("| --- " * (10 + len(VIDEOS)) + "|")
    for r in rows:
        acc = "–" if r["accuracy"] is None else f"{r['accuracy']:.4f}"
        d_acc = "–" if r["accuracy"] is None or base["accuracy"] is None else f"{r['accuracy'] - base['accuracy']:+.4f}"
        cells = [f"{v[0]} {v[1]}/{v[2]}" for v in (r["verdicts"][name] for name in VIDEOS)]
        print(f"| {r['size']} | {r['train_images']} | {acc} | {r['precision']} | {r['recall']} | {r['features_s']} | "
              f"{r['heads_s']} | {r['fps']:.2f} | {r['fps'] / base['fps']:.2f} | {d_acc} | " + " | ".join(cells) + " |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
