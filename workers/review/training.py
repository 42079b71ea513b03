"""Reviewed frames as labelled training examples for a classifier target
(``target train NAME --with-reviews``): frames marked "target" join the
target's class, frames marked "not the target" the other class.

Each frame is written once as a JPEG under ``<data_dir>/reviews/<target>/``,
decoded again from its video while that is available, else taken from its
evidence JPEG; frames with neither are reported and skipped. The frames of
one video form one validation group (they are near-duplicates)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
from sqlalchemy import select

from workers.detect.registry import kinds
from workers.errors import TrackerError
from workers.media import store_from_settings
from workers.review.corrections import video_file
from workers.settings import Settings
from workers.storage import reviews
from workers.storage.db import session_scope
from workers.storage.models import Detection, FrameScore, ReviewVerdict
from workers.targets.bundle import target_meta
from workers.training.dataset import Example, LabelledSet
from workers.video.sampling import read_frames_at


def review_folder(settings: Settings, target: str) -> Path:
    return settings.data_dir / "reviews" / target


def reviewed_examples(settings: Settings, target: str, data: LabelledSet, positive: int) -> tuple[list[Example], list[str]]:
    """Examples for ``data`` (labels ``positive`` / the other class) from the target's frame marks."""
    if len(data.class_names) != 2:
        return [], [f"reviews are added to two-class targets only, not {len(data.class_names)} classes"]
    negative = 1 - positive
    store = store_from_settings(settings)
    folder = review_folder(settings, target)
    folder.mkdir(parents=True, exist_ok=True)
    with session_scope(settings.resolved_database_url) as s:
        found = list(s.scalars(select(Detection).where(Detection.target_name == target)))
        held = reviews.latest(s, [d.id for d in found])
        marks: dict[tuple[int, int], str] = {}  # (video id, frame index) -> verdict; the latest review wins
        for (det_id, index), review in sorted(held.items(), key=lambda kv: kv[1].id):
            if index is not None:
                marks[(s.get(Detection, det_id).video_id, index)] = review.verdict
        videos = {d.video_id: d.video for d in found}
        evidence = {
            (d.video_id, f.frame_index): f.evidence_key
            for d in found
            for f in s.scalars(select(FrameScore).where(FrameScore.detection_id == d.id, FrameScore.evidence_key.isnot(None)))
        }
        s.expunge_all()
    group = max((ex.group for ex in data.examples), default=-1) + 1
    examples, problems = [], []
    for video_id in sorted({v for v, _ in marks}):
        wanted = sorted(i for v, i in marks if v == video_id)
        paths = {i: folder / f"video{video_id}-frame{i}.jpg" for i in wanted}
        missing = [i for i in wanted if not paths[i].is_file()]
        if missing:
            with video_file(store, videos[video_id]) as path:
                if path is not None:
                    for frame in read_frames_at(path, missing, settings.max_frame_side, settings.skip_loop_filter):
                        cv2.imwrite(str(paths[frame.index]), cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR))
        for index in wanted:
            key = evidence.get((video_id, index))
            if not paths[index].is_file() and key and store.exists(key):
                paths[index].write_bytes(store.get(key))
            if not paths[index].is_file():
                problems.append(f"video {video_id} frame {index}: neither the video nor an evidence image is kept")
                continue
            label = positive if marks[(video_id, index)] == ReviewVerdict.TARGET else negative
            examples.append(Example(paths[index], label, group))
        group += 1
    return examples, problems


def retrainable(meta: dict) -> bool:
    """Whether reviews can retrain the saved target ``meta`` describes: its kind learns from
    reviewed frames (``retrained_with_reviews``) and it was trained from a dataset on disk."""
    kind = kinds().get(meta.get("kind", ""))
    return kind is not None and kind.retrained_with_reviews and bool((meta.get("dataset") or {}).get("images"))


def retrain_command(meta: dict) -> list[str]:
    """The ``target train`` command line that retrains a saved classifier target on the
    dataset it was trained on, with its head, class and verdict rule, plus the reviews."""
    dataset = meta.get("dataset") or {}
    if not retrainable(meta):
        raise TrackerError(f"{meta.get('name')}: only a classifier target trained from a dataset can be retrained")
    rule = meta.get("rule") or {}
    args = ["target", "train", meta["name"], "--images", dataset["images"]]
    if dataset.get("labels"):
        args += ["--labels", dataset["labels"]]
    args += ["--head", meta.get("head", "pooled"), "--positive-class", str(meta["positive_class"])]
    args += ["--threshold", repr(float(meta["threshold"]))]
    args += ["--min-fraction", repr(float(rule.get("min_fraction", 1 / 3))), "--min-frames", str(int(rule.get("min_frames", 1)))]
    args += ["--input-size", str(int((meta.get("backbone") or {}).get("input_size", [224])[0]))]
    return [*args, "--with-reviews"]


# Retraining runs in its own process (TensorFlow stays out of the web server); one per target.
RUNNING: dict[str, subprocess.Popen] = {}


def start_retrain(settings: Settings, name: str) -> Path:
    """Start retraining ``name`` with its reviews in the background; returns its log file."""
    running = RUNNING.get(name)
    if running is not None and running.poll() is None:
        raise TrackerError(f"{name} is being retrained already")
    args = retrain_command(target_meta(settings.models_dir, name))
    log = review_folder(settings, name).with_name(f"{name}-retrain.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        RUNNING[name] = subprocess.Popen(
            [sys.executable, "-m", "workers.cli.main", *args], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    return log
