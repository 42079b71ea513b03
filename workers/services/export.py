"""The results export: one row per verdict, its columns (``RESULT_FIELDS``) and how
each format cleans scraped text (``tiktok-tracker results --format csv|json``)."""

from __future__ import annotations

import csv
from datetime import datetime
from typing import IO

from workers.media import store_from_settings
from workers.review.verdicts import shown
from workers.sanitize import csv_cell, sanitize
from workers.settings import Settings
from workers.storage import results, reviews, videos
from workers.storage.db import session_scope
from workers.video_ref import is_url

RESULT_FIELDS = (
    "detection_id",
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
    "current",
    "verdict",
    "verdict_label",
    "partial",
    "partial_note",
    "decoded_frames",
    "promised_frames",
    "score_kind",
    "score_text",
    "confidence",
    "match_distance",
    "match_tolerance",
    "positive_frames",
    "frames",
    "scored_frames",
    "timeline_complete",
    "reused_frames",
    "best_timestamp",
    "positive_timestamps",
    "thumbnail",
    "evidence_key",
    "duplicate_of",
    "duplicate_match",
    "created_at",
    "review",
    "review_disagrees",
    "reviewer",
)
TEXT_FIELDS = ("source", "url", "platform", "platform_id", "author", "caption", "target", "thumbnail", "evidence_key", "reviewer")
# What the table shows of each row, computed once here (``workers.review.verdicts.ShownVerdict``).
SHOWN_FIELDS = ("score_short", "disagreement")
JSON_TEXT_LIMIT = {"caption": 5000}


def result_row(d, store, review=None, superseded: bool = False) -> dict:
    """One verdict for export, its text as stored (each format cleans it: ``json_rows``,
    ``write_csv``); ``review``: the review that holds for its video and target (``reviews.holding``;
    None: unreviewed), across reruns; ``superseded``: a newer verdict replaced it (``current`` false).
    ``verdict`` reads "negative (partial)" for a truncated video (``verdict_label``: the bare label);
    a face target's ``confidence`` is empty: its best score is ``match_distance`` against ``match_tolerance``."""
    v = d.video
    seen = shown(d, review, superseded)
    return {
        "detection_id": d.id,  # what `review` and the web app take
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
        "current": not superseded,
        "verdict": seen.verdict,
        "verdict_label": seen.label,
        "partial": seen.partial,
        "partial_note": seen.partial_note,
        "decoded_frames": seen.decoded_frames,
        "promised_frames": seen.promised_frames,
        "score_kind": seen.score_kind,
        "score_text": seen.score_text,
        "confidence": None if seen.score_kind == "distance" else d.best_score,  # a probability-like score only
        "match_distance": seen.match_distance,
        "match_tolerance": seen.match_tolerance,
        "positive_frames": d.positive_frames,
        "frames": d.frames,
        "scored_frames": d.scored_frames,
        "timeline_complete": d.timeline_complete,  # every sampled frame scored: every appearance listed
        "reused_frames": d.reused_frames,
        "best_timestamp": d.best_timestamp,
        "positive_timestamps": list(d.positive_timestamps or []),
        "thumbnail": store.location(d.evidence_key) if d.evidence_key else None,
        "evidence_key": d.evidence_key,
        "duplicate_of": v.duplicate_of,
        "duplicate_match": v.duplicate_match,
        "created_at": d.created_at.isoformat() if d.created_at else None,
        "review": seen.review,
        "reviewer": seen.reviewer,  # the account that made the review that holds
        "review_disagrees": seen.disagrees,
        "score_short": seen.score_short,
        "disagreement": seen.disagreement,
    }


def result_rows(
    settings: Settings, target: str | None = None, positive: bool = False, since: datetime | None = None, history: bool = False
) -> list[dict]:
    """The current verdict of each (video, target), newest video first, as ``result_row``s, text
    as stored; ``history``: superseded verdicts too (``current`` false)."""
    store = store_from_settings(settings)
    with session_scope(settings.resolved_database_url) as s:
        found = results.verdicts(s, target, positive, since, history=history)
        held = reviews.holding(s, [d.id for d, _ in found])
        return [result_row(d, store, held[d.id], superseded) for d, superseded in found]


def json_rows(rows: list[dict]) -> list[dict]:
    """The rows for JSON: text fields one line, no control characters, capped."""
    out = []
    for row in rows:
        row = {k: v for k, v in row.items() if k not in SHOWN_FIELDS}
        for k in TEXT_FIELDS:
            row[k] = sanitize(row[k], JSON_TEXT_LIMIT.get(k, 2000)) if row[k] is not None else None
        out.append(row)
    return out


def write_csv(rows: list[dict], out: IO[str]) -> None:
    """The rows as CSV (header ``RESULT_FIELDS``): text cleaned, spreadsheet formulas defused,
    timestamps space-separated."""
    writer = csv.DictWriter(out, fieldnames=RESULT_FIELDS, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        cleaned = {k: csv_cell(row[k]) if k in TEXT_FIELDS and row[k] is not None else row[k] for k in row}
        writer.writerow({**cleaned, "positive_timestamps": " ".join(f"{t:g}" for t in row["positive_timestamps"])})
