"""Memory of the pipeline's stages on a long video: peak RSS of each stage's process and
the frame batch's size on disk against the raw sampled frames.

Generates a 10-minute 1280x720 video (10 fps) in which the astronaut of
``workers.demo_media`` drifts over a blurred backdrop, enrols her as a face
target, trains a small classifier target on a random-weight VGG16 (memory, not
accuracy, is measured), then runs each stage function in a fresh process, as a
worker's pool process runs it, on SQLite:

    download -> frames -> score (both targets) -> verdict

and once more the score stage for the classifier target alone with the early
verdict off, so that every sampled frame is read from the batch and scored.
Prints one line per stage: peak RSS (``ru_maxrss``) in MB; and the batch size.

    python bench/memory.py [--minutes 10] [--work bench/.work/memory]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STAGE = r"""
import json, resource, sys
from workers.pipeline import stages
from workers.settings import Settings
settings = Settings(**json.loads(sys.argv[1]))
ctx = stages.StageContext.from_settings(settings)
getattr(stages, sys.argv[2])(ctx, int(sys.argv[3]))
print(json.dumps({"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def make_video(path: Path, minutes: float, fps: int = 10, size=(1280, 720), phase: float = 0.0) -> Path:
    """The astronaut drifting over a blurred backdrop; another ``phase`` gives another path (distinct bytes)."""
    import cv2
    import numpy as np
    from skimage import data

    from workers.demo_media import astronaut_portrait

    width, height = size
    backdrop = (cv2.GaussianBlur(cv2.resize(data.rocket(), size), (0, 0), 12) * 0.6).astype(np.uint8)
    portrait = astronaut_portrait()
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    frames = int(minutes * 60 * fps)
    for n in range(frames):
        t = n / frames
        frame = backdrop.copy()
        side = int(height * (0.45 + 0.1 * np.sin(40 * t)))
        face = cv2.resize(portrait, (side, side), interpolation=cv2.INTER_AREA)
        x = int((width - side) * (0.5 + 0.4 * np.sin(25 * t + phase)))
        y = int((height - side) * 0.5)
        frame[y : y + side, x : x + side] = face
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def cli(env: dict, *args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "workers.cli.main", *args], env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{' '.join(args)} failed:\n{proc.stderr}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / ".work" / "memory")
    args = parser.parse_args()
    work = args.work.resolve()
    shutil.rmtree(work / "data", ignore_errors=True)
    (work / "models").mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TT_DATA_DIR": str(work / "data"), "TT_MODELS_DIR": str(work / "models"),
           "TT_VGG16_WEIGHTS": "random", "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    env.pop("TT_DATABASE_URL", None)

    from tests.videos import write_image
    from workers.demo_media import demo_reference_photo

    video = work / f"long-{args.minutes:g}min-720p.mp4"
    if not video.is_file():
        print(f"generating {video.name} ...", flush=True)
        make_video(video.with_suffix(".part.mp4"), args.minutes).replace(video)
    if not (work / "models" / "astronaut").is_dir():
        cli(env, "target", "add-face", "astronaut", str(demo_reference_photo(work / "photos")))
    if not (work / "models" / "red").is_dir():
        for cls, colour in (("red", (210, 30, 30)), ("other", (30, 30, 210))):
            (work / "images" / cls).mkdir(parents=True, exist_ok=True)
            for i in range(8):
                write_image(work / "images" / cls / f"{i}.jpg", colour, seed=i)
        cli(env, "target", "train", "red", "--images", str(work / "images"), "--positive-class", "red",
            "--epochs", "10", "--folds", "0", "--augment", "0")

    from workers.pipeline import submit
    from workers.settings import Settings
    from workers.storage.db import session_scope
    from workers.storage.models import Video

    base = {"data_dir": str(work / "data"), "models_dir": str(work / "models"), "vgg16_weights": "random",
            "database_url": f"sqlite:///{work / 'data' / 'bench.db'}", "broker_url": "", "keep_videos": True}
    settings = Settings(**base)

    def queue(targets: list[str]) -> tuple[int, str]:
        with session_scope(settings.resolved_database_url) as s:
            row = submit.new_video(str(video), targets)
            s.add(row)
            s.flush()
            return row.id, row.job_id

    def stage(name: str, video_id: int, **changes) -> float:
        proc = subprocess.run([sys.executable, "-c", STAGE, json.dumps({**base, **changes}), name, str(video_id)],
                              env=env, cwd=ROOT, capture_output=True, text=True)
        if proc.returncode:
            raise SystemExit(f"{name} failed:\n{proc.stderr[-3000:]}")
        return json.loads(proc.stdout.strip().splitlines()[-1])["peak_mb"]

    both, job = queue(["astronaut", "red"])
    only, _job = queue(["red"])  # the same file: linked as a repost, scored again (the original is not done yet)
    peaks = {"download": stage("download", both), "frames": stage("extract_frames", both)}
    stage("download", only)
    stage("extract_frames", only)
    batch = Path(settings.media_dir / "frames" / f"{job}.npz")
    with session_scope(settings.resolved_database_url) as s:
        row = s.get(Video, both)
        sampled, width, height = row.sampled_frames, row.width, row.height
    batch_bytes = batch.stat().st_size
    raw_bytes = sampled * width * height * 3
    peaks["score (face + classifier)"] = stage("score", both)
    peaks["score (classifier, every frame)"] = stage("score", only, early_verdict=False, duplicate_tolerance=0.0)
    peaks["verdict"] = stage("verdict", both)
    stage("verdict", only)
    with session_scope(settings.resolved_database_url) as s:
        verdicts = {d.target_name: (d.verdict, d.scored_frames) for v in (both, only) for d in s.get(Video, v).detections}
    print(f"\nvideo: {args.minutes:g} min, {width}x{height}, {sampled} sampled frames; verdicts {verdicts}")
    print(f"frame batch (face + classifier targets): {batch_bytes / 2**20:.1f} MB on disk, "
          f"raw sampled frames {raw_bytes / 2**20:.1f} MB: {100 * batch_bytes / raw_bytes:.1f}%")
    for name, mb in peaks.items():
        print(f"  {name:<34} peak RSS {mb:7.0f} MB")


if __name__ == "__main__":
    main()
