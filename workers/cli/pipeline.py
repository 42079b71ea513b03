"""Distributed pipeline commands: ``worker``, ``enqueue``, ``status``, ``results``.

``enqueue`` talks to the broker (Redis) and the database; ``status`` and
``results`` only read the database; ``worker`` runs a Celery worker.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Iterator, List, Optional

import typer
from rich.markup import escape
from rich.table import Column, Table
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from workers.cli.common import cell, console, err_console, settings, warn
from workers.errors import TrackerError
from workers.sanitize import csv_cell, sanitize

STATUS_COLOURS = {"queued": "white", "downloading": "cyan", "extracting": "cyan", "scoring": "cyan", "done": "green", "failed": "red"}


class Format(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"


@contextmanager
def database_errors(url: str) -> Iterator[None]:
    """An unreachable or broken database is a one-line user error, not a traceback."""
    try:
        yield
    except DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
        safe = make_url(url).render_as_string(hide_password=True)
        raise TrackerError(f"results database {safe}: {reason} (check TT_DATABASE_URL)") from None


# --- worker -------------------------------------------------------------------------


def parse_queues(text: str) -> list[str]:
    from workers.pipeline.celery_app import QUEUES

    names = list(dict.fromkeys(q.strip() for q in text.split(",") if q.strip()))
    unknown = [q for q in names if q not in QUEUES]
    if not names or unknown:
        raise typer.BadParameter(f"choose from {', '.join(QUEUES)} (comma-separated for several)", param_hint="--queues")
    return names


def visible_gpus() -> list[str]:
    """GPU ids this host offers (CUDA_VISIBLE_DEVICES, else nvidia-smi); [] on a CPU host."""
    declared = os.environ.get("CUDA_VISIBLE_DEVICES")
    if declared is not None:
        return [g.strip() for g in declared.split(",") if g.strip() and g.strip() != "-1"]
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]


def default_concurrency(queues: list[str], gpus: list[str]) -> int:
    """score: one process per GPU (one on a CPU host: it uses every core);
    cpu: one per core; io: four (they mostly wait on the network)."""
    if "score" in queues:
        return max(1, len(gpus))
    if "cpu" in queues:
        return os.cpu_count() or 1
    return 4


def worker(
    queues: str = typer.Option(..., "--queues", "-Q", help="Queue(s) to consume: io, cpu or score (comma-separated for several)."),
    concurrency: Optional[int] = typer.Option(None, "--concurrency", "-c", min=1, help="Worker processes (default: score one per GPU, else 1; cpu one per core; io 4)."),
    loglevel: str = typer.Option("INFO", "--loglevel", "-l", help="DEBUG, INFO, WARNING or ERROR."),
) -> None:
    """Run a Celery worker for the given queue(s) (Ctrl-C: finish the current task, then stop)."""
    names = parse_queues(queues)
    cfg = settings()
    if not cfg.broker_url:
        raise TrackerError("no broker configured: set TT_BROKER_URL (e.g. redis://127.0.0.1:6379/0)")
    gpus = visible_gpus() if "score" in names else []
    if gpus:
        os.environ["TT_SCORE_GPUS"] = ",".join(gpus)  # one pool process per GPU (tasks._fresh_process)
    processes = concurrency or default_concurrency(names, gpus)
    os.environ["TT_WORKER_QUEUES"] = ",".join(names)  # score processes warm their models (tasks._fresh_process)
    from workers.pipeline.celery_app import app

    app.worker_main(
        [
            "worker",
            "--queues", ",".join(names),
            "--concurrency", str(processes),
            "--hostname", f"{'+'.join(names)}-{os.getpid()}@%h",
            "--loglevel", loglevel.upper(),
            "--pool", "prefork",
            "--without-gossip",
            "--without-mingle",
        ]
    )


# --- enqueue --------------------------------------------------------------------------


def enqueue(
    sources: List[str] = typer.Argument(
        ..., metavar="URL_OR_PATH...",
        help="Video URLs, files, folders of videos, or research-tool exports (zeeschuimer:FILE.ndjson, 4cat:FILE.csv).",
    ),
    target: List[str] = typer.Option([], "--target", "-t", help="Target name; repeat for several (default: every saved target)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per job."),
    force: bool = typer.Option(False, "--force", help="Run videos already queued or done again (as a new job of the same video)."),
) -> None:
    """Queue videos for the workers; prints one job id per video.

    A path or URL queued before is the same video: its job is printed again, and
    a note says it is already queued or done (with --force, or when it failed,
    it runs again).

    Refused at once (exit status 2, nothing queued): a local file that is not a
    video container, a URL the download address policy refuses (loopback,
    private, metadata addresses; TT_ALLOW_HOSTS)."""
    from workers.pipeline.submit import (
        BrokerUnavailable, check_sources, list_exports, resolve_sources, resolve_targets, submit,
    )

    cfg = settings()
    names = resolve_targets(cfg, target)
    plain, listed, warnings = list_exports(cfg, sources)
    for warning in warnings:
        warn(escape(sanitize(warning)))
    files_and_urls = resolve_sources(plain)
    check_sources(cfg, files_and_urls)
    items = [*files_and_urls, *listed]
    with database_errors(cfg.resolved_database_url):
        try:
            jobs = submit(cfg, items, names, force=force)
        except BrokerUnavailable as exc:
            _print_jobs(exc.queued, as_json)
            raise
    _print_jobs(jobs, as_json)


def _print_jobs(jobs, as_json: bool) -> None:
    for job in jobs:
        if as_json:
            print(json.dumps({"job_id": job.job_id, "video_id": job.video_id, "source": job.source, "existing": job.existing}), flush=True)
            continue
        print(f"{job.ident}\t{sanitize(job.source, None)}", flush=True)
        if job.existing == "done":
            err_console.print(f"{cell(job.source, 200)}: already done as {job.ident} (run it again: --force)", highlight=False)
        elif job.existing:
            err_console.print(f"{cell(job.source, 200)}: already queued as {job.ident} ({job.existing})", highlight=False)


# --- status ---------------------------------------------------------------------------


def status(
    ident: Optional[str] = typer.Argument(None, metavar="[ID]", help="A job id (or video id): that video's details."),
    limit: int = typer.Option(20, "--limit", "-n", min=1, help="Recent videos listed."),
    as_json: bool = typer.Option(False, "--json", help="JSON instead of tables."),
) -> None:
    """Where videos are in the pipeline: counts per status and recent videos, or one video."""
    from workers.media.store import store_from_settings
    from workers.storage import results
    from workers.storage.db import session_scope

    cfg = settings()
    store = store_from_settings(cfg)
    with database_errors(cfg.resolved_database_url), session_scope(cfg.resolved_database_url) as s:
        if ident is None:
            counts = results.status_counts(s)
            videos = [_video_json(v) for v in results.recent_videos(s, limit)]
            if as_json:
                print(json.dumps({"counts": counts, "videos": videos}, indent=2))
                return
            console.print("  ".join(f"{k}: [bold]{counts.get(k, 0)}[/]" for k in STATUS_COLOURS))
            table = Table("job", "video", "status", "source", "updated", "error")
            for v in videos:
                table.add_row(v["job_id"] or "", str(v["video_id"]), _coloured(v["status"]), cell(v["source"]), v["updated_at"][:19], cell(v["error"], 500))
            console.print(table)
            return
        video = results.find_video(s, ident)
        if video is None:
            raise TrackerError(f"no job or video with id {ident!r}")
        info = _video_json(video)
        info["timings"] = [
            {"stage": t.stage, "worker": t.worker, "started_at": t.started_at.isoformat(), "seconds": round((t.finished_at - t.started_at).total_seconds(), 3)}
            for t in results.stage_timings(s, video.id)
        ]
        info["detections"] = [
            {"target": d.target_name, "version": d.target_version, "verdict": d.verdict, "positive_frames": d.positive_frames, "frames": d.frames,
             "best_timestamp": d.best_timestamp, "evidence": store.location(d.evidence_key) if d.evidence_key else None}
            for d in video.detections
        ]
    if as_json:
        print(json.dumps(info, indent=2))
        return
    console.print(f"job {info['job_id'] or '-'}  video {info['video_id']}  {_coloured(info['status'])}  {cell(info['source'], 2000)}", soft_wrap=True)
    if info["error"]:
        console.print(f"[red]reason:[/] {cell(info['error'], 2000)}", highlight=False)
    for t in info["timings"]:
        console.print(f"  {t['stage']:<9} {t['seconds']:>8.2f}s  on {cell(t['worker'])}", highlight=False)
    for d in info["detections"]:
        console.print(f"  {cell(d['target'])}: {d['verdict']} ({d['positive_frames']}/{d['frames']} frames)", highlight=False)
    if any(d["evidence"] for d in info["detections"]):
        console.print(f"evidence thumbnails: tiktok-tracker evidence {info['video_id']} --out DIR", highlight=False)


def _coloured(state: str) -> str:
    return f"[{STATUS_COLOURS.get(state, 'white')}]{state}[/]"


def _video_json(v) -> dict:
    fields = ("job_id", "source", "status", "error", "sampled_frames", "duration")
    stamps = {k: getattr(v, k).isoformat() if getattr(v, k) else "" for k in ("created_at", "updated_at")}
    return {"video_id": v.id, **{k: getattr(v, k) for k in fields}, **stamps}


# --- results --------------------------------------------------------------------------

RESULT_FIELDS = (
    "job_id", "video_id", "source", "url", "platform", "platform_id", "author", "caption", "posted_at",
    "target", "target_version", "verdict", "confidence", "positive_frames", "frames", "scored_frames",
    "reused_frames", "best_timestamp", "positive_timestamps", "thumbnail", "evidence_key", "duplicate_of",
    "duplicate_match", "created_at", "review",
)
TEXT_FIELDS = ("source", "url", "platform", "platform_id", "author", "caption", "target", "thumbnail", "evidence_key")
JSON_TEXT_LIMIT = {"caption": 5000}


def result_row(d, store, review: str | None = None) -> dict:
    """One verdict for export, its text as stored (each format cleans it: see ``results_``);
    ``review``: its review state (unreviewed, confirmed, rejected)."""
    from workers.pipeline.stages import is_url

    v = d.video
    return {
        "job_id": v.job_id,
        "video_id": v.id,
        "source": v.source,
        "url": v.source if is_url(v.source) else None,
        "platform": v.platform,
        "platform_id": v.platform_id or ((v.meta or {}).get("ref") or {}).get("platform_id"),
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


def results_(
    since: Optional[str] = typer.Option(None, "--since", help="Only verdicts found since: a date (2026-01-31), a date-time, or a duration ago (24h, 7d)."),
    target: Optional[str] = typer.Option(None, "--target", "-t", help="Only this target's verdicts."),
    positive: bool = typer.Option(False, "--positive", help="Only positive verdicts."),
    fmt: Format = typer.Option(Format.table, "--format", "-f", help="table, csv or json."),
    wide: bool = typer.Option(False, "--wide", "-w", help="Table: every column (job, author, caption, posted, thumbnail), folded instead of cut."),
) -> None:
    """Verdicts stored in the database, newest video first.

    The table shows video, target, verdict, score, when the target shows and the
    source (--wide: also job, author, caption, posted time, thumbnail); csv and
    json have every field. Scraped text is cleaned for each format (control characters dropped, one line,
    spreadsheet formulas defused in CSV), so hostile metadata cannot break the output.
    """
    from workers.durations import parse_since
    from workers.media.store import store_from_settings
    from workers.storage import results, reviews
    from workers.storage.db import session_scope

    cfg = settings()
    moment = parse_since(since) if since else None
    store = store_from_settings(cfg)
    with database_errors(cfg.resolved_database_url), session_scope(cfg.resolved_database_url) as s:
        found = results.detections(s, target, positive, moment)
        states = reviews.states(s, [d.id for d in found])
        rows = [result_row(d, store, states[d.id]) for d in found]
    if fmt is Format.json:
        for row in rows:
            for k in TEXT_FIELDS:
                row[k] = sanitize(row[k], JSON_TEXT_LIMIT.get(k, 2000)) if row[k] is not None else None
        print(json.dumps(rows, indent=2))
    elif fmt is Format.csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=RESULT_FIELDS, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            cleaned = {k: csv_cell(row[k]) if k in TEXT_FIELDS and row[k] is not None else row[k] for k in row}
            writer.writerow({**cleaned, "positive_timestamps": " ".join(f"{t:g}" for t in row["positive_timestamps"])})
    else:
        console.print(results_table(rows, wide))
        if not rows:
            err_console.print("no results yet")
        elif not wide:
            err_console.print("more columns: --wide; every field: --format csv|json; thumbnails: tiktok-tracker evidence ID --out DIR", highlight=False)


def _fixed(header: str, **kw) -> Column:
    """A column that never shrinks below its header (no "sour…" at 80 columns)."""
    return Column(header, no_wrap=True, min_width=len(header), **kw)


def _timestamps(stamps: list, shown: int = 3) -> str:
    text = ", ".join(f"{t:.1f}s" for t in stamps[:shown])
    return text + (f" +{len(stamps) - shown}" if len(stamps) > shown else "")


def results_table(rows: list[dict], wide: bool = False) -> Table:
    """The results as a table readable at 80 columns: video, target, verdict, score,
    when the target shows, source (folded, never cut). ``wide``: every column."""
    columns = [_fixed("video"), _fixed("target"), _fixed("verdict"), _fixed("score"), Column("seen at", min_width=7, max_width=22)]
    if wide:
        columns += [Column("review", overflow="fold"), Column("job", overflow="fold"), Column("source", overflow="fold", ratio=3), Column("author", overflow="fold", ratio=1),
                    Column("caption", overflow="fold", ratio=3), Column("posted", overflow="fold"), Column("thumbnail", overflow="fold", ratio=3)]
    else:
        columns.append(Column("source", overflow="fold", min_width=12))
    table = Table(*columns)
    for r in rows:
        colour = "green" if r["verdict"] == "positive" else "white"
        best = "" if r["confidence"] is None else f"{r['confidence']:.3f}"
        repost = f" (repost of {r['duplicate_of']})" if r["duplicate_of"] else ""
        cells = [str(r["video_id"]) + repost, cell(r["target"], 64), f"[{colour}]{r['verdict']}[/]", best,
                 _timestamps(r["positive_timestamps"], 10 if wide else 3)]
        if wide:
            cells += [cell(r["review"]), cell(r["job_id"]), cell(r["source"], None), cell(r["author"], 80), cell(r["caption"], 300),
                      cell((r["posted_at"] or "")[:16]), cell(r["thumbnail"], None)]
        else:
            cells.append(cell(r["source"], 300))
        table.add_row(*cells)
    return table


def evidence(
    ident: str = typer.Argument(..., metavar="ID", help="A job id or video id (see `status`, `results`)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write the thumbnails into (created if needed)."),
) -> None:
    """Export a video's evidence thumbnails (the best frame of each positive verdict)
    as VIDEO-TARGET-at-SECONDSs.jpg files; prints each path."""
    from workers.processing.evidence import export_evidence
    from workers.media.store import store_from_settings
    from workers.storage import results
    from workers.storage.db import session_scope

    cfg = settings()
    store = store_from_settings(cfg)
    with database_errors(cfg.resolved_database_url), session_scope(cfg.resolved_database_url) as s:
        video = results.find_video(s, ident)
        if video is None:
            raise TrackerError(f"no job or video with id {ident!r}")
        written = export_evidence(store, video.id, video.detections, out)
    if not written:
        raise TrackerError(f"video {video.id} has no evidence: no positive verdict yet (see `tiktok-tracker status {video.id}`)")
    for path in written:
        print(sanitize(path, None), flush=True)


def register(app: typer.Typer) -> None:
    app.command()(evidence)
    app.command()(worker)
    app.command()(enqueue)
    app.command()(status)
    app.command("results")(results_)
