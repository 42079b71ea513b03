"""Backpressure and fairness with real workers, beat, Redis and Postgres: a watch that lists 40
videos and one that lists 5 share a backlog bound of 12 (8 per watch). The small watch's
videos are done long before the big one's; the backlog never passes its bound; the big watch
says what it deferred. (CI's reduced form of 5,000 against 10.) And a watch's videos not
started by their ``--expire-after`` fail as expired, with the reason."""

from __future__ import annotations

import json
import re
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from tests.pipeline_support import (
    Cluster,
    module_postgres_url,  # noqa: F401  (fixture)
    red_target,  # noqa: F401  (fixture)
    redis_url,  # noqa: F401  (fixture)
)
from tests.videos import write_video
from workers.storage.models import StageTiming, Video, VideoStatus, Watch

pytestmark = pytest.mark.services

BIG, SMALL, BOUND, PER_WATCH = 40, 5, 12, 8


def test_a_small_watch_is_done_long_before_a_big_one_and_the_backlog_stays_bounded(
    tmp_path, module_postgres_url, redis_url, red_target  # noqa: F811
):
    folders = {"big": tmp_path / "big", "small": tmp_path / "small"}
    for name, count in (("big", BIG), ("small", SMALL)):
        folders[name].mkdir()
        for i in range(count):  # distinct colours: no two of them are reposts of each other
            seed = i + (100 if name == "small" else 0)
            write_video(folders[name] / f"{name}{i:03d}.mp4", seconds=1, fps=5, size=(96, 72),
                        color=((seed * 53) % 256, (seed * 97) % 256, (seed * 29) % 256), seed=seed)
    (tmp_path / "cluster").mkdir()
    cluster = Cluster(tmp_path / "cluster", module_postgres_url, redis_url, red_target,
                      backlog_limit=BOUND, watch_backlog_limit=PER_WATCH, watch_poll_interval=1,
                      folder_settle_seconds=0, source_limit=100)
    try:
        for name in ("big", "small"):
            added = cluster.cli("watch", "add", str(folders[name]), "--every", "1s", "--target", "red")
            assert added.returncode == 0, added.stderr
        cluster.start_worker("io+cpu", "io,cpu", concurrency=2)
        cluster.start_worker("score", "score")
        cluster.start_beat()
        most, said, deadline = 0, set(), time.monotonic() + 300
        while True:
            with cluster.session() as s:
                waiting = s.scalar(select(func.count()).select_from(Video).where(Video.status.notin_(VideoStatus.FINISHED)))
                finished = s.scalar(select(func.count()).select_from(Video).where(Video.status.in_(VideoStatus.FINISHED)))
                said.update(w for (warnings,) in s.execute(select(Watch.last_warnings).where(Watch.id == 1)) for w in warnings or [])
            most = max(most, waiting)
            if finished == BIG + SMALL:
                break
            for name, proc in cluster.workers.items():
                assert proc.poll() is None, f"{name} exited\n{cluster.log_text()}"
            assert time.monotonic() < deadline, f"{finished} of {BIG + SMALL} finished\n{cluster.log_text()}"
            time.sleep(0.2)
        listed = [json.loads(line) for line in cluster.cli("watch", "list", "--json").stdout.splitlines()]
    finally:
        cluster.stop()
    assert most <= BOUND, most
    with cluster.session() as s:
        done_at = {
            watch: sorted(t for (t,) in s.execute(
                select(StageTiming.finished_at).join(Video, Video.id == StageTiming.video_id)
                .where(Video.watch_id == watch, StageTiming.stage == "alert")))
            for watch in (1, 2)
        }
        assert s.scalar(select(func.count()).select_from(Video).where(Video.status != VideoStatus.DONE)) == 0
    big, small = done_at[1], done_at[2]
    assert (len(big), len(small)) == (BIG, SMALL)
    print(f"small watch done after {sum(t <= small[-1] for t in big)} of the big watch's {BIG}; most in the backlog: {most}")
    assert small[-1] < big[len(big) // 2]  # the small watch's last video before the big one's median
    # What `watch list` showed along the way: the big watch's runs queued their share and deferred the rest,
    # saying which bound held them (its own, or the whole backlog's when the small watch ran first).
    bounds = rf"deferred \d+: (this watch's backlog \d+ of {PER_WATCH} \(watch_backlog_limit\)|backlog \d+ of {BOUND} \(backlog_limit\))"
    assert said and all(re.fullmatch(bounds, w) for w in said), said
    assert all(w["last_deferred"] == 0 for w in listed)  # all queued in the end


def test_a_watch_video_not_started_by_its_expiry_fails_as_expired(tt_env):
    """The download stage fails a video past its ``expires_at`` with the reason; before it, nothing changes."""
    from workers.errors import TrackerError
    from workers.pipeline import stages
    from workers.settings import get_settings
    from workers.storage import videos
    from workers.storage.db import session_scope
    from workers.storage.models import utcnow

    settings = get_settings()
    ctx = stages.StageContext.from_settings(settings)
    video_file = tt_env / "clip.mp4"
    write_video(video_file, seconds=1, fps=5)
    with session_scope(settings.resolved_database_url) as s:
        late = videos.queued_video("job-late", str(tt_env / "gone.mp4"), ["red"])
        late.expires_at = utcnow() - timedelta(minutes=1)
        fresh = videos.queued_video("job-fresh", str(video_file), ["red"])
        fresh.expires_at = utcnow() + timedelta(hours=1)
        s.add_all([late, fresh])
        s.flush()
        late_id, fresh_id = late.id, fresh.id
    with pytest.raises(TrackerError, match=r"expired: not started by .* UTC \(its watch's --expire-after\)"):
        stages.download(ctx, late_id)
    assert stages.download(ctx, fresh_id) is stages.Next.CONTINUE
