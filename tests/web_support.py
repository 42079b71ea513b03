"""A results database with one reviewed-able video, for the web tests: rows
written through the storage layer as the pipeline writes them, an evidence
JPEG in the media store, and a hostile caption."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from workers.detect.scoring import TargetOutcome, TargetSpec
from workers.processing.evidence import save_evidence
from workers.media import store_from_settings
from workers.storage import results
from workers.storage.db import session_scope
from workers.storage.models import Video
from workers.verdict import FrameScore, VerdictRule, verdict_for
from workers.video.sampling import Frame

HOSTILE_CAPTION = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"> "quoted" & more'
HOSTILE_AUTHOR = '<b onmouseover="window.__pwned = 3">@evil</b>'
SCORES = [0.1, 0.2, 0.7, 0.8, 0.9, 0.3, 0.75, 0.2, 0.1, 0.05]
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Seeded:
    video_id: int
    detection_id: int
    evidence_key: str
    frames: int


def seed_results(settings, source: str = "https://www.tiktok.com/@evil/video/1") -> Seeded:
    """One done video, one positive classifier detection over ``SCORES`` (one frame per second)."""
    target = TargetSpec("logo", "classifier", "v1", 0.5, VerdictRule(min_fraction=1 / 3, min_frames=1))
    scores = [FrameScore(i * 30, float(i), s, reused_from=(i - 1) * 30 if i == 7 else None) for i, s in enumerate(SCORES)]
    outcome = TargetOutcome(target, scores, verdict_for(scores, target.threshold, target.rule, len(scores)))
    rng = np.random.default_rng(0)
    frames = [Frame(s.index, s.timestamp, rng.integers(0, 255, (96, 64, 3), dtype=np.uint8)) for s in scores]
    store = store_from_settings(settings)
    with session_scope(settings.resolved_database_url) as s:
        video = Video(source=source, content_hash="ab" * 32, status="queued", targets=["logo"],
                      author=HOSTILE_AUTHOR, caption=HOSTILE_CAPTION, duration=10.0, sampled_frames=len(scores),
                      width=64, height=96, platform="tiktok")
        s.add(video)
        s.flush()
        video_id = video.id
    best, frame_keys = save_evidence(store, video_id, [outcome], frames, per_detection=3)
    with session_scope(settings.resolved_database_url) as s:
        (det,) = results.finish_video(s, s.get(Video, video_id), [outcome], best, frame_keys)
        return Seeded(video_id, det.id, best["logo"], len(scores))


def web_settings(monkeypatch, password: str | None):
    """Settings of the isolated ``tt_env`` with the web password set (None: no login), no broker."""
    from workers.settings import get_settings

    if password is None:
        monkeypatch.delenv("TT_WEB_PASSWORD", raising=False)
    else:
        monkeypatch.setenv("TT_WEB_PASSWORD", password)
    monkeypatch.setenv("TT_BROKER_URL", "")
    get_settings.cache_clear()
    return get_settings()
