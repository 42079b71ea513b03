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

from workers.cli.common import cell, console, err_console, id_column, progress_bar, settings, warn
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
    name: str | None = typer.Option(
        None,
        "--name",
        "-n",
        help="Node name, the same after each restart (default: QUEUES@%h, e.g. score@%h; %h is the host name). "
        "Give a second worker of the same queues on one host its own, e.g. score2@%h.",
    ),
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

    app.worker_main(plan.argv(loglevel, name))


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
    all_frames: bool = typer.Option(
        False, "--all-frames", help="Score every sampled frame in the first pass (as scan --all-frames: no early verdict, no reuse)."
    ),
) -> None:
    """Queue videos for the workers; prints one job id per video.

    A path or URL queued before is the same video: its job is printed again, and
    a note says it is already queued or done (with --force, or when it failed,
    it runs again).

    Refused at once, each on its own line: a local file that is not a video
    container, a URL the download address policy refuses (loopback, private,
    metadata addresses; TT_ALLOW_HOSTS). The others are still queued: exit
    status 1 when some were refused, 2 when nothing could be queued. Videos
    asked for here pass the backlog bound (backlog_limit), with a warning."""
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
    files_and_urls, refused = check_sources(cfg, resolve_sources(plain))
    items = [*files_and_urls, *listed]
    if not items and len(refused) == 1:
        raise TrackerError(f"nothing queued: {refused[0]}")
    for reason in refused:  # one line each, the rest still queued
        err_console.print(f"[bold red]refused:[/] {cell(reason, None)}", highlight=False, soft_wrap=True)
    if not items:
        raise TrackerError(f"nothing queued: all {len(refused)} refused")
    try:
        jobs = submit(cfg, items, names, publisher(), force=force, all_frames=all_frames)
    except BrokerUnavailable as exc:
        _print_jobs(exc.queued, as_json)
        raise
    _print_jobs(jobs, as_json)
    _warn_past_the_backlog_bound(cfg)
    if refused:
        raise typer.Exit(1)  # some queued, some refused (2: nothing could be done)


def _warn_past_the_backlog_bound(cfg) -> None:
    """Videos asked for by hand are queued whatever the backlog (it is deliberate); say when it is past its bound."""
    from workers.storage import activity
    from workers.storage.db import session_scope

    with session_scope(cfg.resolved_database_url) as s:
        waiting = activity.backlog(s)
    if waiting > cfg.backlog_limit:
        warn(f"backlog {waiting} of {cfg.backlog_limit} (backlog_limit): queued anyway; watches queue nothing new until it drains")


def _print_jobs(jobs, as_json: bool) -> None:
    for job in jobs:
        if as_json:
            print(json.dumps({"job_id": job.job_id, "video_id": job.video_id, "source": job.source, "existing": job.existing}), flush=True)
            continue
        print(f"{job.ident}\t{sanitize(job.source, None)}", flush=True)
        if job.existing == "done":
            err_console.print(
                f"{cell(job.source, 200)}: already done as {job.ident} (run it again: --force)", highlight=False, soft_wrap=True
            )
        elif job.existing:
            err_console.print(f"{cell(job.source, 200)}: already queued as {job.ident} ({job.existing})", highlight=False, soft_wrap=True)


# --- requeue --------------------------------------------------------------------------


def requeue(
    ident: str | None = typer.Argument(None, metavar="[JOB]", help="A job id (or video id) mid-way: run it again from its stage."),
    stuck: bool = typer.Option(False, "--stuck", help="Every video mid-way whose worker is gone (lease expired) or that stalled."),
) -> None:
    """Publish again, from its stage, a video left mid-way (its worker killed, its message
    lost); prints one line per video requeued. The reaper does this on its own within
    TT_LEASE_SECONDS plus one pass; this is for what an operator decides to rerun now."""
    from workers.services.recovery import requeue as requeue_videos

    if (ident is None) == (not stuck):
        raise typer.BadParameter("give a JOB or --stuck (not both)")
    done = requeue_videos(settings(), ident, stuck)
    for r in done:
        print(f"{r.job_id or r.video_id}\tvideo {r.video_id}\t{r.status}: requeued from {r.stage}\t{sanitize(r.why, 300)}", flush=True)
    if not done:
        err_console.print("nothing stuck: every video mid-way has a live worker or is waiting its turn in a queue", highlight=False)


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
        jobs = [v["short_id"] or v["job_id"] or "" for v in found["videos"]]  # unique prefixes: `status` takes them
        ids = [str(v["video_id"]) for v in found["videos"]]
        table = Table(id_column("job", jobs), id_column("video", ids), "status", Column("source", overflow="fold"), "updated", "error")
        for job, video_id, v in zip(jobs, ids, found["videos"], strict=True):
            table.add_row(
                job,
                video_id,
                _coloured(v["status"]),
                cell(v["source"]),
                v["updated_at"][:19].replace("T", " "),  # wraps at the space, never cut
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
    if info.get("repost_of"):
        o = info["repost_of"]
        match = "the same file" if (o["match"] or 0) >= 1 else f"{o['match']:.0%} of frames match" if o["match"] is not None else "matched"
        console.print(
            f"[cyan]repost of:[/] video {o['video_id']}  job {o['job_id'] or '-'}  {cell(o['source'], 2000)} ({match})",
            highlight=False,
            soft_wrap=True,
        )
    if info.get("waiting"):  # mid-way: who runs it and until when, or why it waits (stage leases)
        console.print(f"[cyan]now:[/] {cell(info['waiting'], 2000)}", highlight=False)
    for t in info["timings"]:
        console.print(f"  {t['stage']:<9} {t['seconds']:>8.2f}s  on {cell(t['worker'])}", highlight=False)
    for d in info["detections"]:  # the current verdict of each target, with its version
        notes = [n for n in (d["score_text"], d["partial_note"], d["disagreement"]) if n]
        if d["review"] != "unreviewed":
            notes.append(f"review: {d['review']}")
        console.print(
            f"  {cell(d['target'])} (version {cell(d['target_version'])}): {d['verdict']} ({d['positive_frames']}/{d['frames']} frames)",
            highlight=False,
        )
        for note in notes:  # one a line: the score in words, partial, the review and whether it disagrees
            console.print(f"    {cell(note, 500)}", highlight=False)
    if any(d["evidence"] for d in info["detections"]):
        console.print(f"evidence thumbnails: tiktok-tracker evidence {info['video_id']} --out DIR", highlight=False)


# --- health ---------------------------------------------------------------------------


def health(as_json: bool = typer.Option(False, "--json", help="The checks as JSON.")) -> None:
    """Is the pipeline doing its job? Database, broker, workers per queue, progress, watches,
    alerts: one line each; exit status 1 when one fails (for cron and systemd timers)."""
    from workers.services.health import checks, take_snapshot

    cfg = settings()
    found = checks(take_snapshot(cfg), cfg)
    if as_json:
        print(json.dumps([{"check": c.name, "ok": c.ok, "detail": c.detail} for c in found], indent=2))
    else:
        for c in found:
            console.print(
                f"{'[green]ok  [/]' if c.ok else '[red]FAIL[/]'} {c.name:<9} {cell(c.detail, 2000)}", highlight=False, soft_wrap=True
            )
    if not all(c.ok for c in found):
        raise typer.Exit(1)


# --- prune ----------------------------------------------------------------------------


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return ""


def prune(
    dry_run: bool = typer.Option(False, "--dry-run", help="Count what would go; remove nothing."),
    as_json: bool = typer.Option(False, "--json", help="The report as JSON."),
) -> None:
    """Remove what has outlived its retention (the retain_* settings): old frame data, old
    negative, failed (and, when set, positive) videos with their evidence, unneeded target
    versions. In batches of short transactions; beat runs it daily (prune_interval)."""
    from workers.pipeline.retention import prune as run_prune

    cfg = settings()
    with progress_bar("prune (dry run)" if dry_run else "prune", enabled=not as_json) as advance:
        last: dict[str, int] = {}

        def step(kind: str, videos: int) -> None:
            advance(videos - last.get(kind, 0))
            last[kind] = videos

        report = run_prune(cfg, dry_run=dry_run, progress=step)
    if as_json:
        print(json.dumps(report.to_json(), indent=2))
        return
    table = Table("kind", "videos", "rows", "row bytes (est.)", "objects", "object bytes", title="would remove" if dry_run else "removed")
    for k in report.kinds:
        rows = ", ".join(f"{t} {n}" for t, n in k.rows.items() if n) or "-"
        table.add_row(k.kind, str(k.videos), rows, _size(k.row_bytes), str(k.objects), _size(k.object_bytes))
    console.print(table)
    for k in report.kinds:
        console.print(f"  {k.kind}: {k.rule}", highlight=False)


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
    history: bool = typer.Option(
        False, "--history", help="Also verdicts superseded by a newer one of the same video and target (marked superseded)."
    ),
) -> None:
    """Verdicts stored in the database, newest video first: the current verdict of each video
    and target (its newest, with the target version); --history: superseded ones too.

    A verdict made from part of a truncated video reads "negative (partial)" (or positive), with
    how many frames decoded; a face target's score is a match distance against its tolerance,
    not a probability. A review made before a rerun still holds, flagged when the verdict now
    disagrees with it.

    The table shows video, target, verdict, score, when the target shows and the
    source (--wide: also job, author, caption, posted time, thumbnail); csv and
    json have every field. Scraped text is cleaned for each format (control characters dropped, one line,
    spreadsheet formulas defused in CSV), so hostile metadata cannot break the output.
    """
    from workers.durations import parse_since
    from workers.services.export import json_rows, result_rows, write_csv

    rows = result_rows(settings(), target, positive, parse_since(since) if since else None, history=history)
    if fmt is Format.json:
        print(json.dumps(json_rows(rows), indent=2))
    elif fmt is Format.csv:
        write_csv(rows, sys.stdout)
    else:
        console.print(results_table(rows, wide, _short_job_ids(rows) if wide else None))
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


def _short_job_ids(rows: list[dict]) -> dict[str, str]:
    from workers.services.status import short_job_ids

    return short_job_ids(settings(), [r["job_id"] for r in rows])


def results_table(rows: list[dict], wide: bool = False, short_ids: dict[str, str] | None = None) -> Table:
    """The results as a table readable at 80 columns: video, target, verdict, score,
    when the target shows, source (folded, never cut). ``wide``: every column (job ids
    as ``short_ids``, their unique prefixes, when given). Ids are never cut or folded."""
    short_ids = short_ids or {}
    video_ids = [str(r["video_id"]) for r in rows] + [str(r["duplicate_of"]) for r in rows if r["duplicate_of"]]
    columns = [
        Column("video", min_width=max(map(len, ["video", *video_ids]))),
        _fixed("target"),
        Column("verdict", min_width=len("negative"), overflow="fold"),  # "(partial)" and notes wrap below it
        Column("score", min_width=len("distance"), overflow="fold"),  # a face target's distance, wrapped
        Column("seen at", min_width=7, max_width=22),
    ]
    if wide:
        columns += [
            Column("review", overflow="fold"),
            id_column("job", [short_ids.get(r["job_id"], r["job_id"]) for r in rows if r["job_id"]]),
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
        colour = "green" if r["verdict_label"] == "positive" else "white"
        repost = f" (repost of {r['duplicate_of']})" if r["duplicate_of"] else ""
        notes = [n for n in (r["partial_note"], r["disagreement"]) if n]
        if not r["current"]:
            notes.insert(0, f"superseded (version {r['target_version']})")
        verdict = f"[{colour}]{escape(r['verdict'])}[/]" + "".join(f"\n[yellow]{escape(n)}[/]" for n in notes)
        cells = [
            str(r["video_id"]) + repost,
            cell(r["target"], 64) + f"\n[dim]v{escape(str(r['target_version']))}[/]",
            verdict,
            escape(r["score_short"]),
            _timestamps(r["positive_timestamps"], 10 if wide else 3),
        ]
        if wide:
            cells += [
                cell(r["review"] + (f" by {r['reviewer']}" if r.get("reviewer") else "")),
                cell(short_ids.get(r["job_id"], r["job_id"]) if r["job_id"] else ""),
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
    app.command()(requeue)
    app.command()(status)
    app.command()(health)
    app.command()(prune)
    app.command("results")(results_)
