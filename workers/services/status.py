"""Where videos are in the pipeline (``tiktok-tracker status``): counts per status, recent
videos, one video's stages and verdicts. (The web app's pipeline page: ``review.service.pipeline_view``.)"""

from __future__ import annotations

from datetime import datetime, timedelta

from workers.errors import TrackerError
from workers.media import store_from_settings
from workers.review.verdicts import ShownVerdict, shown
from workers.settings import Settings
from workers.storage import results, reviews, videos
from workers.storage.db import session_scope
from workers.storage.models import Video, VideoStatus, as_utc, utcnow
from workers.verdict_text import partial_note


def video_json(v) -> dict:
    """A video row as ``status`` shows it."""
    fields = ("job_id", "source", "status", "error", "sampled_frames", "duration")
    stamps = {k: getattr(v, k).isoformat() if getattr(v, k) else "" for k in ("created_at", "updated_at")}
    return {"video_id": v.id, **{k: getattr(v, k) for k in fields}, **stamps}


def _at(moment: datetime, now: datetime) -> str:
    moment = as_utc(moment)
    return f"{moment:%H:%M:%S} UTC" if moment.date() == now.date() else f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def waiting(video: Video, settings: Settings, now: datetime) -> str | None:
    """Why a pipeline video mid-way waits, and until when something happens to it (None: it is
    finished, or not a pipeline job): a worker runs its stage (until when it holds it), its worker
    is gone (requeued at the reaper's next pass), or it waits in a queue (until the stall deadline)."""
    if video.status in VideoStatus.FINISHED or video.job_id is None:
        return None
    reaper = f"requeued at the reaper's next pass (every {settings.reaper_interval:g} s, and when a worker starts)"
    lease = videos.lease_of(video)
    if lease is not None and not lease.expired(now):
        return f"{video.status} on worker {lease.worker}, lease until {_at(lease.until, now)}"
    if lease is not None:
        return f"worker {lease.worker} gone since {_at(lease.until, now)} (its lease expired): {reaper}"
    deadline = as_utc(video.updated_at) + timedelta(seconds=settings.stall_timeout)
    if deadline < now:
        return f"no progress since {_at(video.updated_at, now)} (stall_timeout): {reaper}"
    return (
        f"no stage running: in a queue for the next free worker since {_at(video.updated_at, now)}; "
        f"requeued at {_at(deadline, now)} if none takes it (stall_timeout)"
    )


def repost_of(session, video: Video) -> dict | None:
    """The video that ``video`` repeats (its ``duplicate_of``): id, job, source and how strongly
    they match (1.0: the same file); None for an original."""
    original = session.get(Video, video.duplicate_of) if video.duplicate_of else None
    if original is None:
        return None
    return {"video_id": original.id, "job_id": original.job_id, "source": original.source, "match": video.duplicate_match}


def overview(settings: Settings, limit: int) -> dict:
    """``{"counts": {status: n}, "videos": [the ``limit`` most recently updated, as ``video_json``
    with ``short_id``: the shortest unique prefix of its job id]}``."""
    with session_scope(settings.resolved_database_url) as s:
        recent = results.recent_videos(s, limit)
        short = results.short_job_ids(s, [v.job_id for v in recent])  # what a table at 80 columns shows
        videos = [{**video_json(v), "short_id": short.get(v.job_id or "", "")} for v in recent]
        return {"counts": results.status_counts(s), "videos": videos}


def video_report(settings: Settings, ident: str) -> dict:
    """One video (by job id or video id): its row, each stage's timing, each verdict
    with where its evidence is. ``TrackerError`` when there is no such video."""
    store = store_from_settings(settings)
    with session_scope(settings.resolved_database_url) as s:
        video = results.find_video(s, ident)
        if video is None:
            raise TrackerError(f"no job or video with id {ident!r}")
        info = video_json(video)
        lease = videos.lease_of(video)
        info["lease_worker"], info["lease_until"] = (lease.worker, lease.until.isoformat()) if lease else (None, None)
        info["waiting"] = waiting(video, settings, utcnow())
        info["repost_of"] = repost_of(s, video)
        info["timings"] = [
            {
                "stage": t.stage,
                "worker": t.worker,
                "started_at": t.started_at.isoformat(),
                "seconds": round((t.finished_at - t.started_at).total_seconds(), 3),
            }
            for t in results.stage_timings(s, video.id)  # in the order they ran (the stages' order, then follow-ups)
        ]
        # The current verdict of each target (its newest row), with its version; ``superseded``:
        # how many older verdicts of that target it replaced (``results --history`` lists them).
        listed = results.verdicts(s, video_id=video.id, history=True)
        current = [d for d, superseded in listed if not superseded]
        held = reviews.holding(s, [d.id for d in current])
        older = {d.target_name: sum(1 for e, old in listed if old and e.target_name == d.target_name) for d in current}
        info["partial"] = bool(video.partial)
        info["partial_note"] = partial_note(video.decoded_frames, video.promised_frames) if video.partial else None
        info["detections"] = [
            {
                "target": d.target_name,
                "version": d.target_version,
                "target_version": d.target_version,
                "superseded": older[d.target_name],
                "detection_id": d.id,
                **_shown_fields(shown(d, held[d.id])),
                "positive_frames": d.positive_frames,
                "frames": d.frames,
                "scored_frames": d.scored_frames,
                "timeline_complete": d.timeline_complete,
                "best_timestamp": d.best_timestamp,
                "evidence": store.location(d.evidence_key) if d.evidence_key else None,
            }
            for d in current
        ]
    return info


def _shown_fields(seen: ShownVerdict) -> dict:
    """A verdict as ``status`` shows it: "negative (partial)", the frame counts, the score in words."""
    keep = ("verdict", "partial", "partial_note", "decoded_frames", "promised_frames", "score_kind", "score_text")
    return {
        **{k: getattr(seen, k) for k in keep},
        "verdict_label": seen.label,
        "match_distance": seen.match_distance,
        "match_tolerance": seen.match_tolerance,
        "review": seen.review,
        "review_disagrees": seen.disagrees,
        "disagreement": seen.disagreement,
    }


def short_job_ids(settings: Settings, job_ids) -> dict[str, str]:
    """Each job id's shortest unique prefix (8 characters or more), as tables show it."""
    with session_scope(settings.resolved_database_url) as s:
        return results.short_job_ids(s, job_ids)
