"""The agreement gate on the seed set (needs ../shared), in CI's form: the documented
command ``bench/agreement.py`` with ``--groups-every 5``. Every default VGG16 computation
(int8 on OpenVINO; bfloat16 on Keras where this CPU has it fast; int8 again with oneDNN
capped at AVX2 where this CPU has VNNI) keeps every sampled frame of Trump.mp4 and
Biden.mp4 on the side of the threshold that the float32 head (trained on every seed
image) puts it, and the verdicts; and the grouped validation accuracy within 0.01, the
fold heads scoring the held-out images of one group of 20 seed images in 5 (157 of 717):
those of one fold, whose heads alone are trained.

The full gate (every held-out image) is the same command without ``--groups-every``:
run it before a default precision or runtime changes (README, "Speed"). Float32
features come from the run's feature cache, which the seed trainings of other tests share.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from workers.detect.backbone import Hardware
from workers.services.agreement import ACCURACY_TOLERANCE, default_variants, has_vnni

ROOT = Path(__file__).resolve().parents[1]
GROUPS_EVERY = 5  # CI's subset: one group of 20 near-duplicate seed images in 5, one fold's held-out images


def expected_variants() -> list[tuple[str, str]]:
    """(variant, ISA) of every computation the gate must check on this CPU."""
    hardware = Hardware.detect()
    own = [(f"{p}@{r}" if r != "keras" else p, "own") for p, r in default_variants(hardware)]
    return own + ([("int8@openvino", "AVX2")] if has_vnni(hardware) else [])


def check(found: list[dict]) -> None:
    for a in found:
        assert {v["video"]: v["frames"] for v in a["videos"]} == {"Trump.mp4": 18, "Biden.mp4": 61}
        assert a["same_side"] == a["frames"], a["line"]
        assert a["same_verdicts"], a["line"]
        assert [v["verdict"] for v in a["videos"]] == ["positive", "negative"]
        assert abs(a["accuracy"] - a["accuracy_float32"]) <= ACCURACY_TOLERANCE, a["line"]
        assert a["accuracy_float32"] >= 0.80, a["line"]  # one fold's (0.82); the five folds' (0.90) in test_seed_classifier
        assert a["holds"]


@pytest.mark.seed
def test_default_computations_agree_with_float32_on_the_seed_set(seed_dir, seed_weights, seed_features, run_cache, tmp_path, capsys):
    pytest.importorskip("openvino")
    pytest.importorskip("tf2onnx")
    out = tmp_path / "agreement.json"
    proc = subprocess.run(
        [sys.executable, "bench/agreement.py", "--groups-every", str(GROUPS_EVERY), "--work", str(run_cache / "agreement"),
         "--json", str(out), "--seed", str(seed_dir), "--weights", str(seed_weights)],
        cwd=ROOT, capture_output=True, text=True, timeout=800,
    )
    with capsys.disabled():
        print("\n" + proc.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    found = json.loads(out.read_text())
    assert sorted((a["variant"], a["isa"]) for a in found) == sorted(expected_variants())
    assert all(a["images"].startswith("1 group in 5: 157 of 717") for a in found)
    check(found)


def test_fold_heads_score_other_features_of_the_same_rows():
    """``eval_features``: the fold heads score the other rows; the same rows give the same metrics."""
    from workers.training.train import TrainOptions, grouped_validation

    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 20)
    features = rng.normal(size=(40, 7, 7, 512)).astype(np.float32) + labels[:, None, None, None] * 0.5
    groups, original = np.arange(40) // 4, np.ones(40, bool)
    flipped = features[::-1].copy()  # each row now looks like the other class
    opts = TrainOptions(epochs=2, folds=2)
    metrics = grouped_validation(features, labels, groups, original, 2, 1, opts, eval_features={"same": features, "flipped": flipped})
    same, worse = metrics["eval_features"]["same"], metrics["eval_features"]["flipped"]
    assert {k: same[k] for k in ("accuracy", "tp", "fp", "fn", "tn")} == {k: metrics[k] for k in ("accuracy", "tp", "fp", "fn", "tn")}
    assert worse["accuracy"] < metrics["accuracy"]


def test_the_accuracy_of_other_features_counts_only_the_rows_asked_for():
    """``eval_rows``: the gate's CI form measures the other computations on a subset of the
    held-out rows; the same fold heads, the subset's rows only, and a fold none of whose
    rows is counted is not trained (the CI form: one fold's rows, one fold's heads)."""
    from workers.training.train import TrainOptions, grouped_validation

    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1], 20)
    features = rng.normal(size=(40, 7, 7, 512)).astype(np.float32) + labels[:, None, None, None] * 0.5
    groups, original = np.arange(40) // 4, np.ones(40, bool)  # 10 groups; fold = group % 2
    opts = TrainOptions(epochs=2, folds=2)
    steps = []
    everything = grouped_validation(features, labels, groups, original, 2, 1, opts, eval_features={"same": features})
    both = grouped_validation(features, labels, groups, original, 2, 1, opts, eval_features={"same": features}, eval_rows=groups < 4)
    one_fold = grouped_validation(features, labels, groups, original, 2, 1, opts, steps.append,
                                  eval_features={"same": features}, eval_rows=groups % 2 == 0)
    counted = lambda m: m["tp"] + m["fp"] + m["fn"] + m["tn"]  # noqa: E731
    assert counted(everything["eval_features"]["same"]) == 40 and counted(both["eval_features"]["same"]) == 16
    assert {k: both[k] for k in ("accuracy", "tp", "tn")} == {k: everything[k] for k in ("accuracy", "tp", "tn")}
    assert counted(one_fold["eval_features"]["same"]) == counted(one_fold) == 20  # fold 1 was not trained
    assert {s.fold for s in steps if s.done < s.total} == {1} and steps[-1].done == steps[-1].total
