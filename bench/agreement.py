"""The agreement gate on the seed set: may this CPU's default VGG16 computations score
with heads trained on float32 features? Run it before a default precision or runtime
changes (``workers.services.agreement`` says what it checks).

It checks every computation that ``auto`` picks somewhere (int8 on OpenVINO; bfloat16
on Keras where this CPU has it fast) at this CPU's own ISA and, where its int8 kernels
have VNNI, int8 again with oneDNN capped at AVX2 (``ONEDNN_MAX_CPU_ISA``, as on most
users' CPUs): that one's features are computed in a process of their own (oneDNN reads
the cap once, when it loads), the head and the judging in another. The head is always
trained on every seed image and every sampled frame of Trump.mp4 and Biden.mp4 is
checked; ``--groups-every N`` measures the grouped accuracy on the held-out images of
one group of 20 near-duplicate seed images in N only, so that the other computations
run on those alone; with N the number of folds (5, CI's form: 157 of 717 images) those
are the held-out images of one fold, and only that fold's heads are trained (half the
gate's time). Exit status 0 when all agree.

    python bench/agreement.py                    # the full gate (~5 min on 2 cores the first time)
    python bench/agreement.py --groups-every 5   # CI's form (tests/test_backbone_agreement.py)

Features and converted models are cached under ``--work`` (or ``TT_FEATURE_CACHE_DIR`` /
``TT_BACKBONE_CACHE_DIR``), so a second run computes only the fold heads again.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from run import SEED, WEIGHTS  # noqa: E402  (bench/run.py: the seed paths)

CAPPED_ISA = "AVX2"


def settings_and_request(args):
    from workers.services.training import TrainRequest
    from workers.settings import Settings

    settings = Settings(data_dir=args.work / "data", models_dir=args.work / "agreement-models",
                        vgg16_weights=str(args.weights), vgg16_preprocessing="torch", database_url=None)
    return settings, TrainRequest("trump", args.seed / "images", args.seed / "mapping_trump.csv")


def child(args) -> None:
    """In a child process: ``--features`` writes one computation's features (a pickle) for
    the gate; else the gate for ``--variants`` and the ``--computed`` features, as JSON."""
    from workers.services.agreement import backbone_agreement, variant_features

    settings, request = settings_and_request(args)
    videos = [args.seed / "Trump.mp4", args.seed / "Biden.mp4"]
    if args.features:
        precision, runtime = args.features.split("@")
        args.out.write_bytes(pickle.dumps(variant_features(settings, request, precision, runtime, videos, args.groups_every)))
        return
    computed = [pickle.loads(path.read_bytes()) for path in args.computed]
    variants = [tuple(v.split("@")) for v in args.variants]
    found = backbone_agreement(settings, request, variants, videos, args.groups_every, computed)
    args.out.write_text(json.dumps([a.to_dict() for a in found]))


def run_child(args, isa: str | None, *argv: str) -> None:
    """``child`` in a fresh process, ``ONEDNN_MAX_CPU_ISA`` set to ``isa`` (None: this CPU's own)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("ONEDNN_MAX_CPU_ISA", None)
    if isa:
        env["ONEDNN_MAX_CPU_ISA"] = isa
    common = ["--groups-every", str(args.groups_every), "--work", str(args.work), "--seed", str(args.seed), "--weights", str(args.weights)]
    done = subprocess.run([sys.executable, __file__, "--child", *common, *argv], env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"the gate's child ({isa or 'own ISA'}) failed:\n{done.stderr[-3000:]}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--groups-every", type=int, default=1, metavar="N",
                    help="measure the grouped accuracy on one group of seed images in N (default 1: all of them)")
    ap.add_argument("--work", type=Path, default=ROOT / "bench" / ".work", help="cache of features and converted models")
    ap.add_argument("--json", type=Path, help="also write the findings here")
    ap.add_argument("--seed", type=Path, default=SEED, help=argparse.SUPPRESS)
    ap.add_argument("--weights", type=Path, default=WEIGHTS, help=argparse.SUPPRESS)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--features", help=argparse.SUPPRESS)  # child: one computation's features
    ap.add_argument("--variants", nargs="*", default=[], help=argparse.SUPPRESS)  # child: the gate's own-ISA computations
    ap.add_argument("--computed", nargs="*", type=Path, default=[], help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return 0
    if not (args.seed.is_dir() and args.weights.is_file()):
        print(f"the gate needs the seed data ({args.seed}) and VGG16 weights ({args.weights})", file=sys.stderr)
        return 2

    from workers.detect.backbone import Hardware
    from workers.services.agreement import default_variants, has_vnni

    hardware = Hardware.detect(environ={k: v for k, v in os.environ.items() if k != "ONEDNN_MAX_CPU_ISA"})  # own ISA
    images = "every seed image" if args.groups_every <= 1 else f"one group of seed images in {args.groups_every}"
    print(f"agreement gate, grouped accuracy on {images}, {os.cpu_count()} CPUs", flush=True)
    args.work.mkdir(parents=True, exist_ok=True)
    computed = []
    if has_vnni(hardware):
        capped = args.work / f"int8-{CAPPED_ISA}.pickle"
        run_child(args, CAPPED_ISA, "--features", "int8@openvino", "--out", str(capped))
        computed.append(str(capped))
    out = args.work / "agreement.json"
    own = [f"{p}@{r}" for p, r in default_variants(hardware)]
    run_child(args, None, "--variants", *own, "--computed", *computed, "--out", str(out))
    found = json.loads(out.read_text())
    for a in found:
        print(f"  {a['line']}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(found, indent=1))
    return 0 if all(a["holds"] for a in found) else 1


if __name__ == "__main__":
    sys.exit(main())
