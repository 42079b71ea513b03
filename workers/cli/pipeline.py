"""Distributed pipeline commands: ``worker``, ``enqueue``, ``status``, ``results``.

``enqueue`` talks to the broker (Redis) and the database; ``status`` and
``results`` only read the database; ``worker`` runs a Celery worker.
"""

from __future__ import annotations

import json
import os
import sys
from enum import Enum
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Column, Table

from workers.cli.common import cell, console, err_console, settings, warn
from workers.errors import TrackerError
from workers.sanitize import sanitize

# A video between queued and finished is in some stage: its status is cyan (``status_colours``).
FIXED_COLOURS = {"queued": "white", "done": "green", "failed": "red"}


class Format(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"


# --- worker -------------------------------------------------------------------------


def worker(
    queues: str = typer.Option(..., "--queues", "-Q", help="Queue(s) to consume: io, cpu or score (comma-separated for several)."),
    concurrency: int | None = typer.Option(
        None,
        "--concurrency",
        "-c",
        min=1,
        help="Worker processes (default: score one per GPU, else 1; cpu one per core; io 4); a score-only worker on a CPU host or one GPU: videos in flight (default TT_SCORE_VIDEOS_IN_FLIGHT).",
    ),
    loglevel: str = typer.Option("INFO", "--loglevel", "-l", help="DEBUG, INFO, WARNING or ERROR."),
) -> None:
    """Run a Celery worker for the given queue(s) (Ctrl-C: finish the current task, then stop)."""
    from workers.services.worker_plan import UnknownQueue, plan_worker
    from workers.settings import get_settings

    try:
        plan = plan_worker(settings(), queues, concurrency)
    except UnknownQueue as exc:
        raise typer.BadParameter(str(exc), param_hint="--queues") from None
    os.environ.update(plan.environment())  # worker_queues, score_gpus of each pool process (tasks._fresh_process)
    get_settings.cache_clear()  # the pool processes fork from this one: they read the settings again, with the plan
    from workers.pipeline.celery_app import app

    app.worker_main(plan.argv(loglevel, os.getpid()))


# --- enqueue --------------------------------------------------------------------------


def enqueue(
    sources: list[str] = typer.Argument(
        ...,
        metavar="URL_OR_PATH...",
        help="Video URLs, files, folders of videos, or research-tool exports (zeeschuimer:FILE.ndjson, 4cat:FILE.csv or .ndjson).",
    ),
    target: list[str] = typer.Option([], "--target", "-t", help="Target name; repeat for several (default: every saved target)."),
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
        BrokerUnavailable,
        check_sources,
        list_exports,
        resolve_sources,
        resolve_targets,
        submit,
    )
    from workers.pipeline.tasks import publisher

    cfg = settings()
    names = resolve_targets(cfg, target)
    plain, listed, warnings = list_exports(cfg, sources)
    for warning in warnings:
        warn(escape(sanitize(warning)))
    files_and_urls = resolve_sources(plain)
    check_sources(cfg, files_and_urls)
    items = [*files_and_urls, *listed]
    try:
        jobs = submit(cfg, items, names, publisher(), force=force)
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
    ident: str | None = typer.Argument(None, metavar="[ID]", help="A job id (or video id): that video's details."),
    limit: int = typer.Option(20, "--limit", "-n", min=1, help="Recent videos listed."),
    as_json: bool = typer.Option(False, "--json", help="JSON instead of tables."),
) -> None:
    """Where videos are in the pipeline: counts per status and recent videos, or one video."""
    from workers.services import status as pipeline_status

    cfg = settings()
    if ident is None:
        found = pipeline_status.overview(cfg, limit)
        if as_json:
            print(json.dumps(found, indent=2))
            return
        counts = found["counts"]
        console.print("  ".join(f"{k}: [bold]{counts.get(k, 0)}[/]" for k in status_colours()))
        table = Table("job", "video", "status", "source", "updated", "error")
        for v in found["videos"]:
            table.add_row(
                v["job_id"] or "",
                str(v["video_id"]),
                _coloured(v["status"]),
                cell(v["source"]),
                v["updated_at"][:19],
                cell(v["error"], 500),
            )
        console.print(table)
        return
    info = pipeline_status.video_report(cfg, ident)
    if as_json:
        print(json.dumps(info, indent=2))
        return
    console.print(
        f"job {info['job_id'] or '-'}  video {info['video_id']}  {_coloured(info['status'])}  {cell(info['source'], 2000)}", soft_wrap=True
    )
    if info["error"]:
        console.print(f"[red]reason:[/] {cell(info['error'], 2000)}", highlight=False)
    for t in info["timings"]:
        console.print(f"  {t['stage']:<9} {t['seconds']:>8.2f}s  on {cell(t['worker'])}", highlight=False)
    for d in info["detections"]:
        console.print(f"  {cell(d['target'])}: {d['verdict']} ({d['positive_frames']}/{d['frames']} frames)", highlight=False)
    if any(d["evidence"] for d in info["detections"]):
        console.print(f"evidence thumbnails: tiktok-tracker evidence {info['video_id']} --out DIR", highlight=False)


def status_colours() -> dict[str, str]:
    """Every status, in the order a video goes through them (``stages.STATUSES``), with its colour."""
    from workers.pipeline.stages import STATUSES

    return {state: FIXED_COLOURS.get(state, "cyan") for state in STATUSES}


def _coloured(state: str) -> str:
    return f"[{status_colours().get(state, 'white')}]{state}[/]"


# --- results --------------------------------------------------------------------------


def results_(
    since: str | None = typer.Option(
        None, "--since", help="Only verdicts found since: a date (2026-01-31), a date-time, or a duration ago (24h, 7d)."
    ),
    target: str | None = typer.Option(None, "--target", "-t", help="Only this target's verdicts."),
    positive: bool = typer.Option(False, "--positive", help="Only positive verdicts."),
    fmt: Format = typer.Option(Format.table, "--format", "-f", help="table, csv or json."),
    wide: bool = typer.Option(
        False, "--wide", "-w", help="Table: every column (job, author, caption, posted, thumbnail), folded instead of cut."
    ),
) -> None:
    """Verdicts stored in the database, newest video first.

    The table shows video, target, verdict, score, when the target shows and the
    source (--wide: also job, author, caption, posted time, thumbnail); csv and
    json have every field. Scraped text is cleaned for each format (control characters dropped, one line,
    spreadsheet formulas defused in CSV), so hostile metadata cannot break the output.
    """
    from workers.durations import parse_since
    from workers.services.export import json_rows, result_rows, write_csv

    rows = result_rows(settings(), target, positive, parse_since(since) if since else None)
    if fmt is Format.json:
        print(json.dumps(json_rows(rows), indent=2))
    elif fmt is Format.csv:
        write_csv(rows, sys.stdout)
    else:
        console.print(results_table(rows, wide))
        if not rows:
            err_console.print("no results yet")
        elif not wide:
            err_console.print(
                "more columns: --wide; every field: --format csv|json; thumbnails: tiktok-tracker evidence ID --out DIR", highlight=False
            )


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
        columns += [
            Column("review", overflow="fold"),
            Column("job", overflow="fold"),
            Column("source", overflow="fold", ratio=3),
            Column("author", overflow="fold", ratio=1),
            Column("caption", overflow="fold", ratio=3),
            Column("posted", overflow="fold"),
            Column("thumbnail", overflow="fold", ratio=3),
        ]
    else:
        columns.append(Column("source", overflow="fold", min_width=12))
    table = Table(*columns)
    for r in rows:
        colour = "green" if r["verdict"] == "positive" else "white"
        best = "" if r["confidence"] is None else f"{r['confidence']:.3f}"
        repost = f" (repost of {r['duplicate_of']})" if r["duplicate_of"] else ""
        cells = [
            str(r["video_id"]) + repost,
            cell(r["target"], 64),
            f"[{colour}]{r['verdict']}[/]",
            best,
            _timestamps(r["positive_timestamps"], 10 if wide else 3),
        ]
        if wide:
            cells += [
                cell(r["review"]),
                cell(r["job_id"]),
                cell(r["source"], None),
                cell(r["author"], 80),
                cell(r["caption"], 300),
                cell((r["posted_at"] or "")[:16]),
                cell(r["thumbnail"], None),
            ]
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
    from workers.media import store_from_settings
    from workers.processing.evidence import export_evidence
    from workers.storage import results
    from workers.storage.db import session_scope

    cfg = settings()
    store = store_from_settings(cfg)
    with session_scope(cfg.resolved_database_url) as s:
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
