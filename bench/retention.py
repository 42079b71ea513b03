"""Months of steady arrivals with retention, on a driven clock: does the database stop growing?

    python bench/retention.py --days 90 --per-day 1000 --frames 30 --database postgresql+psycopg:///tt_bench
    python bench/retention.py --days 90 --per-day 8 --frames 8 --json out.json   # CI's form (tests/test_retention.py)

Each simulated day adds ``--per-day`` finished videos through the project's storage code
(``videos.queued_video``, ``results.save_outcome``, ``results.record_timing``,
``hash_index.store_hashes``): every ``--positive-every``-th positive, with evidence JPEGs in
the media store; one in ten of the negatives reviewed; one failed video a day. Then
``tiktok-tracker prune``'s code (``pipeline.retention.prune``) runs at the day's end, every
``--prune-every`` days, with the retention given here. The clock is the videos' finish
times: the run ends at the real now, so a ``prune --dry-run`` started afterwards sees the
same ages.

It prints (and ``--json`` writes) the database's bytes per table at the end of each
simulated month, the rows and objects prune removed per kind, and probes: the evidence of
the first day's positive video exists in the store until its retention and not after; the
first day's negative video loses its frame data after ``--frame-data-days`` (its row and
verdict stay) and leaves the repost index, while a kept video still matches.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select, update  # noqa: E402

from workers.detect.scoring import TargetOutcome, TargetSpec  # noqa: E402
from workers.media import store_from_settings  # noqa: E402
from workers.media.keys import evidence_frame_key, evidence_key, media_id  # noqa: E402
from workers.pipeline.retention import prune  # noqa: E402
from workers.reposts import hash_index  # noqa: E402
from workers.reposts.hashing import FrameHash  # noqa: E402
from workers.settings import Settings  # noqa: E402
from workers.storage import results, videos  # noqa: E402
from workers.storage import retention as stored  # noqa: E402
from workers.storage.db import session_scope  # noqa: E402
from workers.storage.models import FrameHash as FrameHashRow  # noqa: E402
from workers.storage.models import FrameScore as FrameScoreRow  # noqa: E402
from workers.storage.models import Review, Video, VideoStatus, utcnow  # noqa: E402
from workers.verdict import FrameScore, VerdictRule, verdict_for  # noqa: E402

STAGES = ("download", "frames", "score", "verdict", "alert")
TARGET = TargetSpec("red", "classifier", "v1", 0.5, VerdictRule())
JPEG = bytes.fromhex("ffd8ffe000104a46494600") + b"\0" * 4000  # evidence-sized bytes (the store does not decode them)


def random_hash(rng: random.Random) -> str:
    return f"{rng.getrandbits(256):064x}"


def add_video(session, store, rng: random.Random, finished: datetime, n: int, frames: int, positive: bool, reviewed: bool) -> int:
    """One finished video with its verdict, frame scores, timings and frame hashes; its id."""
    video = videos.queued_video(str(uuid.uuid4()), f"https://example.org/@user/video/{finished:%Y%m%d}{n:06d}", ["red"])
    session.add(video)
    session.flush()
    scores = [FrameScore(i, float(i), (0.9 if positive and i % 2 == 0 else 0.1) + rng.random() * 0.05) for i in range(frames)]
    outcome = TargetOutcome(TARGET, scores, verdict_for(scores, TARGET.threshold, TARGET.rule))
    media = media_id(video.job_id, video.id)
    best_key, frame_keys = None, {}
    if positive:
        best_key = evidence_key(media, TARGET.name, TARGET.version)
        store.put(best_key, JPEG)
        for s in scores[:4:2]:
            frame_keys[s.index] = evidence_frame_key(media, TARGET.name, TARGET.version, s.index)
            store.put(frame_keys[s.index], JPEG)
    detection = results.save_outcome(session, video, outcome, best_key, frame_keys)
    if reviewed:
        session.add(Review(detection_id=detection.id, verdict="confirmed", reviewer="bench"))
    hashes = [FrameHash(i, float(i), random_hash(rng), random_hash(rng), 100, 0) for i in range(frames)]
    hash_index.store_hashes(session, video.id, hashes)
    for k, stage in enumerate(STAGES):
        results.record_timing(session, video.id, stage, "bench/1", finished - timedelta(seconds=10 - k), finished - timedelta(seconds=9 - k))
    video.status, video.frames_linked = VideoStatus.DONE, True
    video.content_hash = f"{rng.getrandbits(256):064x}"
    session.flush()
    session.execute(update(Video).where(Video.id == video.id).values(created_at=finished, updated_at=finished))
    return video.id


def add_failed(session, finished: datetime, n: int) -> None:
    video = videos.queued_video(str(uuid.uuid4()), f"https://example.org/@user/video/f{finished:%Y%m%d}{n:06d}", ["red"])
    video.status, video.error = VideoStatus.FAILED, "download: HTTP 404 (the video was deleted)"
    session.add(video)
    session.flush()
    session.execute(update(Video).where(Video.id == video.id).values(created_at=finished, updated_at=finished))


def database_bytes(url: str) -> int:
    with session_scope(url) as s:
        return sum(stored.table_bytes(s).values())


def first_hashes(url: str, video_id: int) -> list[str]:
    with session_scope(url) as s:
        return list(s.scalars(select(FrameHashRow.pdq).where(FrameHashRow.video_id == video_id).limit(3)))


def frame_scores(session, video_id: int) -> int:
    return int(session.scalar(select(func.count()).select_from(FrameScoreRow).where(FrameScoreRow.detection.has(video_id=video_id))) or 0)


def matched(url: str, hashes: list[str]) -> bool:
    with session_scope(url) as s:
        return bool(hashes) and bool(hash_index.near_frames(s, hashes))


def simulate(args, settings: Settings) -> dict:
    rng = random.Random(args.seed)
    url = settings.resolved_database_url
    store = store_from_settings(settings)
    end = utcnow().replace(microsecond=0)
    start = end - timedelta(days=args.days)
    out: dict = {"months": [], "pruned": {}, "probes": {}, "videos_added": 0}
    probes: dict = {}
    started = time.monotonic()
    # The ages the repost index is asked about: either side of each retention.
    match_ages = {int(d) + k for d in (args.frame_data_days, args.negative_days, args.positive_days) for k in (0, 1)}
    for day in range(args.days):
        finished = start + timedelta(days=day, hours=12)
        with session_scope(url) as s:
            for n in range(args.per_day):
                positive = n % args.positive_every == 0
                reviewed = not positive and n % 10 == 1
                vid = add_video(s, store, rng, finished + timedelta(seconds=n), n, args.frames, positive, reviewed)
                if day == 0:
                    kind = "positive" if positive else "reviewed" if reviewed else "negative"
                    probes.setdefault(kind, vid)
            add_failed(s, finished, day)
        out["videos_added"] += args.per_day
        if day == 0:
            probes["negative_hashes"] = first_hashes(url, probes["negative"])
            probes["positive_hashes"] = first_hashes(url, probes["positive"])
            with session_scope(url) as s:
                probes["positive_media"] = media_id(s.get(Video, probes["positive"]).job_id, probes["positive"])
        now = start + timedelta(days=day + 1)
        if (day + 1) % args.prune_every == 0 or day + 1 == args.days:
            report = prune(settings, now=now)
            for k in report.kinds:
                total = out["pruned"].setdefault(k.kind, {"videos": 0, "objects": 0, "rows": {}})
                total["videos"] += k.videos
                total["objects"] += k.objects
                for table, n in k.rows.items():
                    total["rows"][table] = total["rows"].get(table, 0) + n
        age = day + 1
        probe = out["probes"]
        with session_scope(url) as s:
            negative = s.get(Video, probes["negative"])
            probe.setdefault("negative_frame_scores", {})[age] = frame_scores(s, probes["negative"])
            probe.setdefault("negative_row", {})[age] = negative is not None
            probe.setdefault("reviewed_frame_scores", {})[age] = frame_scores(s, probes["reviewed"])
        if age in match_ages:
            probe.setdefault("negative_matched", {})[age] = matched(url, probes["negative_hashes"])
            probe.setdefault("positive_matched", {})[age] = matched(url, probes["positive_hashes"])
        probe.setdefault("positive_objects", {})[age] = len(list(store.keys(f"evidence/{probes['positive_media']}")))
        if age % 30 == 0 or age == args.days:
            size = database_bytes(url)
            out["months"].append({"day": age, "bytes": size})
            print(f"day {age:4d}: database {size / 1e6:8.2f} MB  ({time.monotonic() - started:.0f} s)", flush=True)
    out["probes"]["videos"] = {k: v for k, v in probes.items() if isinstance(v, int)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--per-day", type=int, default=200, help="videos finished per simulated day")
    parser.add_argument("--frames", type=int, default=15, help="sampled frames per video")
    parser.add_argument("--positive-every", type=int, default=10, help="one video in N is positive")
    parser.add_argument("--prune-every", type=int, default=1, help="simulated days between two prunes (beat: 1)")
    parser.add_argument("--frame-data-days", type=float, default=10)
    parser.add_argument("--negative-days", type=float, default=30)
    parser.add_argument("--failed-days", type=float, default=10)
    parser.add_argument("--positive-days", type=float, default=45)
    parser.add_argument("--database", default="", help="a database URL (default: a SQLite file under --work)")
    parser.add_argument("--media", default="", help="a media store URL (default: a folder under --work; s3://bucket/prefix with TT_S3_*)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/tt-bench-retention"))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    settings = Settings(
        data_dir=args.work / "data",
        database_url=args.database or f"sqlite:///{args.work / 'retention.db'}",
        media_url=args.media or str(args.work / "media"),
        retain_frame_data_days=args.frame_data_days,
        retain_negative_days=args.negative_days,
        retain_failed_days=args.failed_days,
        retain_positive_days=args.positive_days,
        s3_endpoint_url=os.environ.get("TT_S3_ENDPOINT_URL") or None,
    )
    out = simulate(args, settings)
    out["args"] = {k: str(v) for k, v in vars(args).items()}
    months = out["months"]
    print("\nbytes per simulated month: " + ", ".join(f"day {m['day']}: {m['bytes'] / 1e6:.2f} MB" for m in months))
    for kind, total in out["pruned"].items():
        rows = ", ".join(f"{t} {n}" for t, n in total["rows"].items() if n) or "-"
        print(f"pruned {kind}: {total['videos']} videos, {total['objects']} objects ({rows})")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
