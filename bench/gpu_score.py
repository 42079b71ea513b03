"""The score stage's forward pass on the accelerator Keras sees, at several batch sizes.

    KERAS_BACKEND=jax python bench/gpu_score.py                      # random weights (same cost)
    KERAS_BACKEND=jax python bench/gpu_score.py --weights W.h5 --preprocessing torch
    python bench/gpu_score.py --decode VIDEO...                         # + decode cost on this host's CPU

For each batch size it times ``VGG16Backbone.features`` (what the score
worker calls: host preprocessing, transfer, forward pass, features back on
the host) on batches made of frames from several videos (``--videos-per-batch``:
how a score worker batching across videos would fill them), after a warm-up
that compiles every shape. Prints frames/s per batch size and the ratio to the
best one. With ``--decode``, also measures on this host how many sampled
frames per second one CPU core extracts (decode + backbone resize, as the
``frames`` stage does) and so how many extraction cores keep one accelerator busy.

Needs only NumPy and Keras with a backend (TensorFlow or JAX); ``--decode``
needs OpenCV. No network: random weights unless ``--weights`` names a file.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def frames_from_videos(n_videos: int, per_video: int, seed: int = 0):
    """``n_videos`` x ``per_video`` backbone-sized frames; each video has its own base
    picture with per-frame noise (content does not change the cost; this keeps it honest)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_videos):
        base = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
        for _ in range(per_video):
            noise = rng.integers(-8, 9, base.shape)
            out.append(np.clip(base.astype(np.int16) + noise, 0, 255).astype(np.uint8))
    return out


def time_backbone(backbone, frames, batch: int, seconds: float) -> tuple[float, int]:
    """Frames/s of ``backbone.extract`` over ``frames`` in batches of ``batch`` (cycling)."""
    done, start, i = 0, time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        chunk = [frames[(i + k) % len(frames)] for k in range(batch)]
        backbone.extract(chunk)
        done += batch
        i += batch
    return done / (time.perf_counter() - start), done


def decode_rate(videos: list[Path]) -> tuple[float, int, float]:
    """(sampled frames per CPU-second, sampled frames, CPU seconds) for the frames stage's work."""
    from workers.detect.backbone import resize_frame
    from workers.video.sampling import read_sampled

    cpu0, frames = time.process_time(), 0
    for video in videos:
        sampled = read_sampled(video, 1.0, 1280)
        for f in sampled.frames:
            resize_frame(f.image)
        frames += len(sampled.frames)
    cpu = time.process_time() - cpu0
    return frames / cpu, frames, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", default="16,32,64,128,256", help="comma-separated batch sizes")
    ap.add_argument("--videos-per-batch", type=int, default=4, help="distinct videos whose frames fill each batch")
    ap.add_argument("--seconds", type=float, default=10.0, help="timing per batch size")
    ap.add_argument("--precision", default="bfloat16", choices=["float32", "bfloat16"])
    ap.add_argument("--weights", default="random", help="a VGG16 notop .weights.h5 file (default: random, same cost)")
    ap.add_argument("--preprocessing", default="caffe", choices=["caffe", "torch"])
    ap.add_argument("--decode", nargs="*", type=Path, default=[], help="videos to measure the extraction cost on")
    args = ap.parse_args()

    from workers.detect.backbone import VGG16Backbone
    from workers.detect.runtime import keras

    k = keras()
    backend = k.backend.backend()
    devices = "?"
    if backend == "jax":
        import jax

        devices = ", ".join(str(d) for d in jax.devices())
    print(f"keras {k.__version__}, backend {backend}, devices: {devices}, precision {args.precision}", flush=True)

    backbone = VGG16Backbone(args.weights, args.preprocessing, precision=args.precision)
    sizes = [int(b) for b in args.batches.split(",")]
    frames = frames_from_videos(args.videos_per_batch, max(sizes) // args.videos_per_batch + 1)
    results = []
    for batch in sizes:
        backbone.extract(frames[:batch])  # compile this shape
        backbone.extract(frames[:batch])
        rate, n = time_backbone(backbone, frames, batch, args.seconds)
        results.append((batch, rate, n))
        print(f"  batch {batch:>4}: {rate:8.1f} frames/s ({n} frames)", flush=True)
    best = max(r for _, r, _ in results)
    print("\nbatch  frames/s  of best")
    for batch, rate, _ in results:
        print(f"{batch:>5} {rate:>9.1f} {rate / best:>8.2f}")

    if args.decode:
        per_core, sampled, cpu = decode_rate(args.decode)
        print(f"\nextraction on this host: {sampled} sampled frames in {cpu:.1f} CPU s = {per_core:.0f} frames/s per core")
        print(f"cores to keep {best:.0f} frames/s busy: {best / per_core:.1f} (every sampled frame scored; "
              "early verdict and near-duplicate reuse raise it in proportion to the frames they skip)")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    main()
