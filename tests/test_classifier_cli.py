"""The classifier workflow through the real CLI, on a random-weight VGG16 and
generated media (what CI can always run)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.videos import truncate, write_image, write_video, zero_frame_video

RED, BLUE = (210, 30, 30), (30, 30, 210)


def run_cli(env: dict, *args: str, check: bool = False) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "workers.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:{proc.stdout}\nstderr:{proc.stderr}")
    return proc


def json_rows(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def cli_env(root: Path) -> dict:
    """The CLI's environment: data and models under ``root``, random VGG16 weights, SQLite."""
    env = {
        **os.environ,
        "TT_DATA_DIR": str(root / "data"),
        "TT_MODELS_DIR": str(root / "models"),
        "TT_VGG16_WEIGHTS": "random",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    env.pop("TT_DATABASE_URL", None)
    return env


def colour_folders(images: Path, per_class: int) -> Path:
    """``images/red`` and ``images/other`` (blue), ``per_class`` generated images each."""
    for cls, colour in (("red", RED), ("other", BLUE)):
        (images / cls).mkdir(parents=True)
        for i in range(per_class):
            write_image(images / cls / f"{i}.jpg", colour, seed=i)
    return images


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("clf")
    env = cli_env(root)
    images = colour_folders(root / "images", 8)
    proc = run_cli(
        env, "target", "train", "red", "--images", str(images), "--positive-class", "red",
        "--epochs", "30", "--folds", "2", "--block", "2", "--augment", "0", check=True,
    )
    assert "Grouped 2-fold validation: accuracy" in proc.stdout
    # Not a terminal: progress as log lines, every tenth of each phase and at each fold and head.
    progress = proc.stderr.splitlines()
    assert "backbone features (images): 16/16" in proc.stderr
    for fold in (1, 2):
        for head in range(1, 6):
            assert any(line.startswith(f"validation (fold {fold}/2, head {head}/5): ") for line in progress), proc.stderr
    assert any(line.startswith("final fit (head 5/5): 150/150, ") for line in progress), proc.stderr
    assert any("left" in line for line in progress)  # an ETA
    videos = root / "videos"
    videos.mkdir()
    write_video(videos / "red.mp4", seconds=4, color=RED)
    write_video(videos / "blue.mp4", seconds=4, color=BLUE, seed=1)
    return env, root, videos


def test_training_on_a_terminal_shows_progress_bars_with_an_eta(trained, tmp_path):
    env, root, _ = trained
    proc = run_cli(
        {**env, "FORCE_COLOR": "1", "COLUMNS": "120", "TT_MODELS_DIR": str(tmp_path / "models")}, "target", "train", "red2",
        "--images", str(root / "images"), "--positive-class", "red", "--epochs", "2", "--folds", "2", "--block", "2",
        "--augment", "0", check=True,
    )
    assert "backbone features" in proc.stderr and "validation: fold 2/2, head 5/5" in proc.stderr
    assert "final fit: head 5/5" in proc.stderr and "eta" in proc.stderr and "\x1b[" in proc.stderr  # rich bars


def test_train_writes_a_bundle_with_backbone_identity(trained):
    env, root, _ = trained
    meta = json.loads((root / "models" / "red" / "target.json").read_text())
    assert meta["kind"] == "classifier" and meta["positive_class"] == "red"
    assert meta["backbone"]["weights_id"] == "random:seed=0"
    assert meta["backbone"]["preprocessing"] == "caffe"
    assert meta["rule"] == {"min_fraction": pytest.approx(1 / 3), "min_frames": 1}
    assert {"accuracy", "precision", "recall"} <= set(meta["metrics"])
    listed = run_cli(env, "target", "list", "--json", check=True)
    assert json_rows(listed.stdout)[0]["name"] == "red"


def test_scan_verdicts_json_and_cache(trained):
    env, _, videos = trained
    proc = run_cli(env, "scan", str(videos), "--target", "red", "--json", "--all-frames", check=True)
    rows = {Path(r["video"]).name: r for r in json_rows(proc.stdout)}
    assert rows["red.mp4"]["verdict"] == "positive" and rows["red.mp4"]["positive_frames"] == 4
    assert rows["blue.mp4"]["verdict"] == "negative" and rows["blue.mp4"]["positive_frames"] == 0
    assert rows["red.mp4"]["positive_timestamps"] == [0.0, 1.0, 2.0, 3.0]
    assert set(rows["red.mp4"]) >= {"video", "target", "frames", "positive_frames", "verdict", "positive_timestamps", "error"}
    again = json_rows(run_cli(env, "scan", str(videos / "red.mp4"), "-t", "red", "--json", check=True).stdout)
    assert again[0]["cached"] is True and again[0]["verdict"] == "positive"


def test_bad_videos_fail_with_reasons_and_keep_other_results(trained):
    env, root, videos = trained
    bad = root / "bad"
    bad.mkdir()
    (bad / "notes.mp4").write_text("not a video")
    truncate(videos / "red.mp4", bad / "cut.mp4")
    zero_frame_video(bad / "empty.mp4")
    proc = run_cli(env, "scan", str(bad), str(videos / "blue.mp4"), "-t", "red", "--json", "--force")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    rows = {Path(r["video"]).name: r for r in json_rows(proc.stdout)}
    for name in ("notes.mp4", "cut.mp4", "empty.mp4"):
        assert rows[name]["verdict"] == "failed"
        assert "readable video" in rows[name]["error"] or "no decodable frames" in rows[name]["error"]
    assert rows["blue.mp4"]["verdict"] == "negative"
    # the red video's earlier result is still there (served from the database)
    red = json_rows(run_cli(env, "scan", str(videos / "red.mp4"), "-t", "red", "--json", check=True).stdout)
    assert red[0]["cached"] and red[0]["verdict"] == "positive"


def test_backbone_mismatch_is_refused(trained):
    env, _, videos = trained
    other = {**env, "TT_VGG16_PREPROCESSING": "torch"}
    proc = run_cli(other, "scan", str(videos / "red.mp4"), "-t", "red")
    assert proc.returncode == 2
    assert "was trained on" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) <= 3  # one message (rich may wrap it)


def test_missing_target_and_bad_labels_are_one_line_errors(trained, tmp_path):
    env, _, videos = trained
    proc = run_cli(env, "scan", str(videos), "-t", "nobody")
    assert proc.returncode == 2 and "no target named 'nobody'" in proc.stderr
    (tmp_path / "imgs").mkdir()
    write_image(tmp_path / "imgs" / "a.jpg", RED)
    (tmp_path / "l.csv").write_text("Image_ID,Class\na.jpg,1\nmissing.jpg,0\n")
    proc = run_cli(env, "target", "train", "x", "--labels", str(tmp_path / "l.csv"), "--images", str(tmp_path / "imgs"))
    assert proc.returncode == 2 and "two classes" in proc.stderr and "Traceback" not in proc.stderr
    assert "missing.jpg" in proc.stderr  # the skipped row is reported too


def test_eval_reports_per_video_verdicts_and_frame_rates(trained, tmp_path):
    env, _, videos = trained
    (tmp_path / "yes").mkdir()
    (tmp_path / "no").mkdir()
    (tmp_path / "yes" / "red.mp4").write_bytes((videos / "red.mp4").read_bytes())
    (tmp_path / "no" / "blue.mp4").write_bytes((videos / "blue.mp4").read_bytes())
    (tmp_path / "no" / "junk.mp4").write_text("not a video")
    proc = run_cli(env, "target", "eval", "red", "--positive", str(tmp_path / "yes"), "--negative", str(tmp_path / "no"), "--json", check=True)
    report = json.loads(proc.stdout)
    by_name = {Path(v["video"]).name: v for v in report["videos"]}
    assert by_name["red.mp4"]["verdict"] == "positive" and by_name["red.mp4"]["correct"]
    assert by_name["blue.mp4"]["verdict"] == "negative" and by_name["blue.mp4"]["correct"]
    assert by_name["junk.mp4"]["verdict"] == "failed" and "readable video" in by_name["junk.mp4"]["error"]
    assert report["video_metrics"]["accuracy"] == 1.0
    assert report["frame_metrics"]["positive_rate_in_positive_videos"] == 1.0
    assert report["frame_metrics"]["positive_rate_in_negative_videos"] == 0.0
