"""The results export: one row per verdict, its columns (``RESULT_FIELDS``) and how
each format cleans scraped text (``tiktok-tracker results --format csv|json``)."""

from __future__ import annotations

import csv
from datetime import datetime
from typing import IO

from workers.media import store_from_settings
from workers.sanitize import csv_cell, sanitize
from workers.settings import Settings
from workers.storage import results, reviews, videos
from workers.storage.db import session_scope
from workers.video_ref import is_url

RESULT_FIELDS = (
    "job_id",
    "video_id",
    "source",
    "url",
    "platform",
    "platform_id",
    "author",
    "caption",
    "posted_at",
    "target",
    "target_version",
    "verdict",
    "confidence",
    "positive_frames",
    "frames",
    "scored_frames",
    "reused_frames",
    "best_timestamp",
    "positive_timestamps",
    "thumbnail",
    "evidence_key",
    "duplicate_of",
    "duplicate_match",
    "created_at",
    "review",
)
TEXT_FIELDS = ("source", "url", "platform", "platform_id", "author", "caption", "target", "thumbnail", "evidence_key")
JSON_TEXT_LIMIT = {"caption": 5000}


def result_row(d, store, review: str | None = None) -> dict:
    """One verdict for export, its text as stored (each format cleans it: ``json_rows``,
    ``write_csv``); ``review``: its review state (unreviewed, confirmed, rejected)."""
    v = d.video
    return {
        "job_id": v.job_id,
        "video_id": v.id,
        "source": v.source,
        "url": v.source if is_url(v.source) else None,
        "platform": v.platform,
        "platform_id": videos.platform_ids(v)[1],
        "author": v.author,
        "caption": v.caption,
        "posted_at": v.posted_at.isoformat() if v.posted_at else None,
        "target": d.target_name,
        "target_version": d.target_version,
        "verdict": d.verdict,
        "confidence": d.best_score,
        "positive_frames": d.positive_frames,
        "frames": d.frames,
        "scored_frames": d.scored_frames,
        "reused_frames": d.reused_frames,
        "best_timestamp": d.best_timestamp,
        "positive_timestamps": list(d.positive_timestamps or []),
        "thumbnail": store.location(d.evidence_key) if d.evidence_key else None,
        "evidence_key": d.evidence_key,
        "duplicate_of": v.duplicate_of,
        "duplicate_match": v.duplicate_match,
        "created_at": d.created_at.isoformat() if d.created_at else None,
        "review": review or "unreviewed",
    }


def result_rows(settings: Settings, target: str | None = None, positive: bool = False, since: datetime | None = None) -> list[dict]:
    """The stored verdicts (newest video first) as ``result_row``s, text as stored."""
    store = store_from_settings(settings)
    with session_scope(settings.resolved_database_url) as s:
        found = results.detections(s, target, positive, since)
        states = reviews.states(s, [d.id for d in found])
        return [result_row(d, store, states[d.id]) for d in found]


def json_rows(rows: list[dict]) -> list[dict]:
    """The rows for JSON: text fields one line, no control characters, capped."""
    out = []
    for row in rows:
        row = dict(row)
        for k in TEXT_FIELDS:
            row[k] = sanitize(row[k], JSON_TEXT_LIMIT.get(k, 2000)) if row[k] is not None else None
        out.append(row)
    return out


def write_csv(rows: list[dict], out: IO[str]) -> None:
    """The rows as CSV (header ``RESULT_FIELDS``): text cleaned, spreadsheet formulas defused,
    timestamps space-separated."""
    writer = csv.DictWriter(out, fieldnames=RESULT_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        cleaned = {k: csv_cell(row[k]) if k in TEXT_FIELDS and row[k] is not None else row[k] for k in row}
        writer.writerow({**cleaned, "positive_timestamps": " ".join(f"{t:g}" for t in row["positive_timestamps"])})
