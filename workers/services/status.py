"""Where videos are in the pipeline (``tiktok-tracker status``): counts per status, recent
videos, one video's stages and verdicts. (The web app's pipeline page: ``review.service.pipeline_view``.)"""

from __future__ import annotations

from workers.errors import TrackerError
from workers.media import store_from_settings
from workers.settings import Settings
from workers.storage import results
from workers.storage.db import session_scope


def video_json(v) -> dict:
    """A video row as ``status`` shows it."""
    fields = ("job_id", "source", "status", "error", "sampled_frames", "duration")
    stamps = {k: getattr(v, k).isoformat() if getattr(v, k) else "" for k in ("created_at", "updated_at")}
    return {"video_id": v.id, **{k: getattr(v, k) for k in fields}, **stamps}


def overview(settings: Settings, limit: int) -> dict:
    """``{"counts": {status: n}, "videos": [the ``limit`` most recent, as ``video_json``]}``."""
    with session_scope(settings.resolved_database_url) as s:
        return {"counts": results.status_counts(s), "videos": [video_json(v) for v in results.recent_videos(s, limit)]}


def video_report(settings: Settings, ident: str) -> dict:
    """One video (by job id or video id): its row, each stage's timing, each verdict
    with where its evidence is. ``TrackerError`` when there is no such video."""
    store = store_from_settings(settings)
    with session_scope(settings.resolved_database_url) as s:
        video = results.find_video(s, ident)
        if video is None:
            raise TrackerError(f"no job or video with id {ident!r}")
        info = video_json(video)
        info["timings"] = [
            {
                "stage": t.stage,
                "worker": t.worker,
                "started_at": t.started_at.isoformat(),
                "seconds": round((t.finished_at - t.started_at).total_seconds(), 3),
            }
            for t in results.stage_timings(s, video.id)
        ]
        info["detections"] = [
            {
                "target": d.target_name,
                "version": d.target_version,
                "verdict": d.verdict,
                "positive_frames": d.positive_frames,
                "frames": d.frames,
                "best_timestamp": d.best_timestamp,
                "evidence": store.location(d.evidence_key) if d.evidence_key else None,
            }
            for d in video.detections
        ]
    return info
