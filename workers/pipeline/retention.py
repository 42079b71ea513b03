"""Retention: ``tiktok-tracker prune [--dry-run]`` and beat's daily ``prune``.

What each ``retain_*`` setting keeps is removed in batches of ``prune_batch`` videos, each
in its own short transaction (``storage.retention``): the frame data of old negative videos,
then old negative, failed, and (when ``retain_positive_days`` is set) positive or reviewed
videos with their evidence objects, then published target versions nobody needs. Objects go
before the rows that name them, so an interrupted prune leaves rows whose evidence is gone
(removed at the next run), never objects no row refers to. On Postgres the tables it thinned
are vacuumed afterwards, so the space is reused and the database stops growing.

Media left by crashed runs (frame batches, score files, downloads) are housekeeping's
(hourly, ``stages.housekeeping``), not this module's.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select

from workers.media import store_from_settings
from workers.media.keys import TARGETS, target_file_key
from workers.media.store import MediaStore
from workers.settings import Settings
from workers.storage import retention as stored
from workers.storage.db import get_engine, session_scope
from workers.storage.models import Detection, utcnow
from workers.targets.published import PublishedTargets, publishes_targets

log = logging.getLogger(__name__)

TARGET_VERSIONS = "target versions"


@dataclass
class KindReport:
    """What one kind of data lost (or, dry, would lose)."""

    kind: str
    rule: str  # which data, from when: "negative, unreviewed, finished before 2026-11-03"
    videos: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    row_bytes: int = 0  # estimated from each table's bytes per row
    objects: int = 0
    object_bytes: int = 0

    def to_json(self) -> dict:
        return {
            "kind": self.kind,
            "rule": self.rule,
            "videos": self.videos,
            "rows": self.rows,
            "row_bytes": self.row_bytes,
            "objects": self.objects,
            "object_bytes": self.object_bytes,
        }


@dataclass
class PruneReport:
    at: datetime
    dry_run: bool
    kinds: list[KindReport]

    def to_json(self) -> dict:
        return {"at": self.at.isoformat(), "dry_run": self.dry_run, "kinds": [k.to_json() for k in self.kinds]}


def _days(days: float) -> timedelta | None:
    return timedelta(days=days) if days > 0 else None


def rules(settings: Settings, now: datetime) -> list[tuple[str, datetime, str]]:
    """(kind, cutoff, what it means) for every kind the settings retain for a limited time."""
    wanted = [
        (
            stored.FRAME_DATA,
            _days(settings.retain_frame_data_days),
            "per-frame scores, frame hashes, stage timings of negative, unreviewed videos",
        ),
        (stored.NEGATIVE, _days(settings.retain_negative_days), "negative, unreviewed videos and their verdicts"),
        (stored.FAILED, _days(settings.retain_failed_days), "failed videos and their reasons"),
        (stored.KEPT, _days(settings.retain_positive_days), "positive or reviewed videos, their verdicts, reviews and evidence"),
    ]
    return [(kind, now - age, f"{text}, finished before {now - age:%Y-%m-%d %H:%M} UTC") for kind, age, text in wanted if age is not None]


Progress = Callable[[str, int], None]  # (kind, videos done so far)


def prune(settings: Settings, now: datetime | None = None, dry_run: bool = False, progress: Progress | None = None) -> PruneReport:
    """Remove (``dry_run``: count) what has outlived its retention; see the module docstring."""
    now = now or utcnow()
    url = settings.resolved_database_url
    store = store_from_settings(settings)
    with session_scope(url) as s:
        per_row = stored.row_bytes(s)
    report = PruneReport(now, dry_run, [])
    for kind, cutoff, rule in rules(settings, now):
        found = KindReport(kind, rule, rows=dict.fromkeys(stored.FRAME_TABLES if kind == stored.FRAME_DATA else stored.VIDEO_TABLES, 0))
        folders = object_folders(kind, settings)
        after = 0
        while True:
            with session_scope(url) as s:
                ids = stored.due(s, kind, cutoff, settings.prune_batch, after_id=after)
                if not ids:
                    break
                counts = stored.row_counts(s, ids, list(found.rows))
                media = stored.media_ids(s, ids) if folders else []
            keys = [key for m in media for folder in folders for key in store.keys(f"{folder}/{m}")]
            found.videos += len(ids)
            for table, n in counts.items():
                found.rows[table] += n
                found.row_bytes += int(n * per_row.get(table, 0.0))
            for key in keys:
                size = store.size(key)
                if size is not None:
                    found.objects += 1
                    found.object_bytes += size
            if dry_run:
                after = ids[-1]  # page on: nothing is removed
            else:
                for key in keys:
                    store.delete(key)
                with session_scope(url) as s:
                    if kind == stored.FRAME_DATA:
                        stored.drop_frame_data(s, ids, now)
                    else:
                        stored.delete_videos(s, ids)
            if progress is not None:
                progress(kind, found.videos)
        report.kinds.append(found)
    report.kinds.append(prune_target_versions(settings, store, dry_run))
    if not dry_run and any(k.videos for k in report.kinds):
        stored.vacuum(get_engine(url))
    log.info(
        "prune%s: %s", " (dry run)" if dry_run else "", "; ".join(f"{k.kind}: {k.videos} videos, {k.objects} objects" for k in report.kinds)
    )
    return report


def object_folders(kind: str, settings: Settings) -> list[str]:
    """The media-store folders (``evidence/<media>``, ``videos/<media>``) a deleted video of ``kind``
    may have objects in: evidence only a positive has (kept videos); a file only with ``keep_videos``.
    (Frame batches and score files of finished videos are housekeeping's.)"""
    if kind == stored.FRAME_DATA:
        return []
    return [*(["evidence"] if kind == stored.KEPT else []), *(["videos"] if settings.keep_videos else [])]


def prune_target_versions(settings: Settings, store: MediaStore, dry_run: bool) -> KindReport:
    """Published target versions beyond the current one, the ``retain_target_versions`` newest and
    every version a stored verdict names (a folder store keeps one version per target: nothing)."""
    found = KindReport(
        TARGET_VERSIONS, f"published versions beyond the current, the {settings.retain_target_versions} newest and those a verdict names"
    )
    if not publishes_targets(store):
        return found
    catalog = PublishedTargets(store, settings.data_dir)
    with session_scope(settings.resolved_database_url) as s:
        named = {(n, v) for n, v in s.execute(select(Detection.target_name, Detection.target_version).distinct())}
    for name in catalog.names():
        files: dict[str, list[str]] = {}
        for key in store.keys(f"{TARGETS}/{name}"):
            parts = key.split("/")
            if len(parts) >= 4:
                files.setdefault(parts[2], []).append(key)
        current = str(catalog.pointer(name).get("version", ""))
        newest = sorted(files, key=lambda v: _created(store, name, v), reverse=True)[: settings.retain_target_versions]
        for version in sorted(set(files) - {current} - set(newest) - {v for n, v in named if n == name}):
            for key in files[version]:
                found.objects += 1
                found.object_bytes += store.size(key) or 0
                if not dry_run:
                    store.delete(key)
    return found


def _created(store: MediaStore, name: str, version: str) -> str:
    """When a published version was saved (its ``target.json``'s ``created``); "" when unknown."""
    try:
        return str(json.loads(store.get(target_file_key(name, version, "target.json"))).get("created", ""))
    except Exception:  # noqa: BLE001 - a damaged or partial version sorts oldest
        return ""
