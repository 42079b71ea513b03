"""VGG16 runtimes side by side: frames/s of Keras float32/bfloat16, ONNX Runtime float32/int8,
OpenVINO float32/int8/bfloat16, and their agreement with float32 on the seed set.

Each configuration runs in its own process (so that one's threads, caches and oneDNN
state do not colour another's): it loads the backbone (the first load of an ONNX
configuration exports and quantises it into ``--work``/data/cache/backbones, not
timed), runs two warm-up passes, then as many batches of ``--batch`` (16) preprocessed
frames as fit in ``--seconds``. Ratios are against Keras float32 measured in the same
run. ``--isa AVX2`` sets ``ONEDNN_MAX_CPU_ISA`` for the children, so that TensorFlow's
and OpenVINO's oneDNN behave as on an AVX2-only CPU (ONNX Runtime's MLAS ignores it
and still uses the CPU's own instructions: its numbers then do not stand for an AVX2
CPU). A configuration that does not compile (OpenVINO bfloat16 under AVX2) is reported
as such.

With ../shared (seed weights, CSV and videos) and without ``--no-agreement``, each
configuration but Keras float32 is also put through the agreement gate
(``workers.services.agreement``): frames of Trump.mp4/Biden.mp4 on the same side of the
threshold as float32, verdicts, grouped validation accuracy. Features are cached in
``--work``/data/cache, so only the first run computes the float32 ones (a few minutes).

The README's numbers (quiet machine, 2 cores; speeds about 4 min per command; the
agreement gate adds about 6 min the first time (features of 717 images per
configuration) and about 2-3 min later (the fold heads are trained again)):

    python bench/runtimes.py --seconds 20
    python bench/runtimes.py --seconds 20 --isa AVX2 --no-agreement

Smoke run (random weights, no agreement):

    python bench/runtimes.py --seconds 1 --weights random --configs keras-f32 ov-int8
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from run import SEED, WEIGHTS  # noqa: E402  (bench/run.py: the seed paths)

# name: (precision, runtime)
CONFIGS = {
    "keras-f32": ("float32", "keras"),
    "keras-bf16": ("bfloat16", "keras"),
    "ort-f32": ("float32", "onnxruntime"),
    "ort-int8": ("int8", "onnxruntime"),
    "ov-f32": ("float32", "openvino"),
    "ov-int8": ("int8", "openvino"),
    "ov-bf16": ("bfloat16", "openvino"),
}


def child_speed(args) -> dict:
    """In the child: load one configuration, then frames/s at ``args.batch`` for ``args.seconds``."""
    import numpy as np

    from workers.detect.backbone import VGG16Backbone

    precision, runtime = CONFIGS[args.config]
    weights, preprocessing = (str(WEIGHTS), "torch") if args.weights == "seed" else ("random", None)
    started = time.perf_counter()
    backbone = VGG16Backbone(weights, preprocessing, precision=precision, runtime=runtime, cache_dir=args.work / "data" / "cache" / "backbones")
    rng = np.random.default_rng(0)
    batch = (rng.random((args.batch, 224, 224, 3), dtype=np.float32) * 4 - 2).astype(np.float32)
    backbone.features(batch)
    load_s = time.perf_counter() - started
    backbone.features(batch)
    n, t = 0, time.perf_counter()
    while time.perf_counter() - t < args.seconds:
        backbone.features(batch)
        n += args.batch
    return {"config": args.config, "frames_per_s": n / (time.perf_counter() - t), "frames": n, "load_s": load_s}


def child_agreement(args) -> list[dict]:
    from workers.services.agreement import backbone_agreement
    from workers.services.training import TrainRequest
    from workers.settings import Settings

    settings = Settings(data_dir=args.work / "data", models_dir=args.work / "agreement-models",
                        vgg16_weights=str(WEIGHTS), vgg16_preprocessing="torch", database_url=None)
    variants = [CONFIGS[c] for c in args.agreement_configs]
    found = backbone_agreement(settings, TrainRequest("trump", SEED / "images", SEED / "mapping_trump.csv"), variants,
                               [SEED / "Trump.mp4", SEED / "Biden.mp4"])
    return [{"variant": a.variant, "line": a.line(), "holds": a.holds} for a in found]


def run_child(argv: list[str], env: dict, timeout: float) -> tuple[object | None, str]:
    try:
        done = subprocess.run([sys.executable, __file__, *argv], env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout:.0f} s"
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"failed: {tail[:400]}"
    return json.loads(lines[-1][len("RESULT "):]), ""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    ap.add_argument("--seconds", type=float, default=20.0, help="timed seconds per configuration")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--isa", default="", help="ONEDNN_MAX_CPU_ISA for the children (e.g. AVX2); ONNX Runtime ignores it")
    ap.add_argument("--weights", choices=["seed", "random"], default="seed" if WEIGHTS.is_file() else "random")
    ap.add_argument("--no-agreement", action="store_true", help="skip the agreement gate on the seed set")
    ap.add_argument("--work", type=Path, default=ROOT / "bench" / ".work")
    ap.add_argument("--config", help=argparse.SUPPRESS)  # child: speed of one configuration
    ap.add_argument("--agreement-configs", nargs="+", help=argparse.SUPPRESS)  # child: the agreement gate
    args = ap.parse_args()
    if args.config:
        print("RESULT " + json.dumps(child_speed(args)), flush=True)
        return 0
    if args.agreement_configs:
        print("RESULT " + json.dumps(child_agreement(args)), flush=True)
        return 0

    env = {k: v for k, v in os.environ.items() if not k.startswith("TT_")}
    env.update(TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT))
    if args.isa:
        env["ONEDNN_MAX_CPU_ISA"] = args.isa
    else:
        env.pop("ONEDNN_MAX_CPU_ISA", None)
    common = ["--seconds", str(args.seconds), "--batch", str(args.batch), "--weights", args.weights, "--work", str(args.work)]
    print(f"VGG16 runtimes, batch {args.batch}, {args.seconds:g} s each, {os.cpu_count()} CPUs, "
          f"ONEDNN_MAX_CPU_ISA={args.isa or '(unset)'}, weights {args.weights}", flush=True)
    results: dict[str, dict] = {}
    for name in args.configs:
        result, why = run_child(["--config", name, *common], env, timeout=600 + args.seconds)
        if result is None:
            print(f"  {name:11s} {why}", flush=True)
            continue
        results[name] = result
        base = results.get("keras-f32")
        ratio = f"{result['frames_per_s'] / base['frames_per_s']:5.2f}x keras-f32" if base else ""
        print(f"  {name:11s} {result['frames_per_s']:7.2f} frames/s  {ratio}  (load {result['load_s']:.1f} s)", flush=True)
    if "keras-f32" in results:
        base = results["keras-f32"]["frames_per_s"]
        print("ratios against keras-f32: " + ", ".join(f"{n} {r['frames_per_s'] / base:.2f}x" for n, r in results.items()))
    rc = 0
    gate = [n for n in args.configs if n != "keras-f32" and n in results]
    if not args.no_agreement and gate and WEIGHTS.is_file() and SEED.is_dir():
        print(f"agreement gate on the seed set ({', '.join(gate)}; first run computes the features) ...", flush=True)
        found, why = run_child(["--agreement-configs", *gate, *common], env, timeout=3600)
        if found is None:
            print(f"  agreement: {why}")
            rc = 1
        for a in found or []:
            print(f"  {a['line']}")
    elif not args.no_agreement:
        print("agreement gate skipped (needs ../shared: seed data and weights)")
    return rc


if __name__ == "__main__":
    sys.exit(main())
