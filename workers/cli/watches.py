"""``tiktok-tracker watch ...``: sources scraped on a schedule (by celery beat) for targets."""

from __future__ import annotations

import json

import typer
from rich.table import Column, Table

from workers.cli.common import cell, console, id_column, settings, warn

app = typer.Typer(help="Watch sources on a schedule: new videos are scanned for targets and alerted on.", no_args_is_help=True)


def _when(moment) -> str:
    from workers.storage.models import as_utc

    return as_utc(moment).isoformat(timespec="seconds") if moment else ""


def watch_json(watch) -> dict:
    from workers.durations import format_duration

    return {
        "id": watch.id,
        "source": watch.source,
        "targets": list(watch.targets or []),
        "every": format_duration(watch.every_seconds),
        "every_seconds": watch.every_seconds,
        "enabled": watch.enabled,
        "all_frames": bool(watch.all_frames),
        "expire_after_seconds": watch.expire_after_seconds,
        "last_run_at": _when(watch.last_run_at) or None,
        "next_run_at": _when(watch.next_run_at) or None,
        "last_listed": watch.last_listed,
        "last_enqueued": watch.last_enqueued,
        "last_deferred": watch.last_deferred or 0,  # new videos left for its next run (a warning says which bound)
        "last_warnings": list(watch.last_warnings or []),
        "last_error": watch.last_error,
        "created_at": _when(watch.created_at) or None,
        "changed_by": watch.changed_by,  # the account that added, enabled or disabled it last (web app)
    }


@app.command("add")
def add(
    source: str = typer.Argument(..., help="What to watch: tiktok:trending, @user, #tag, a URL, urls:FILE, a folder, tiktok-json:URL ..."),
    every: str = typer.Option("15m", "--every", help="How often: 30s, 15m, 2h, 1d, 1h30m."),
    target: list[str] = typer.Option(..., "--target", "-t", help="Target name; repeat for several."),
    all_frames: bool = typer.Option(
        False, "--all-frames", help="Its videos score every sampled frame in the first pass (as enqueue --all-frames)."
    ),
    expire_after: str | None = typer.Option(
        None, "--expire-after", help="Its videos not started within this (e.g. 1d for trending) fail as expired, with the reason."
    ),
) -> None:
    """Add a watch; it first runs at the next beat tick (or now with `watch run ID`)."""
    from workers.durations import format_duration, parse_duration
    from workers.pipeline.submit import resolve_targets
    from workers.sources import canonical_spec
    from workers.storage import watches
    from workers.storage.db import session_scope
    from workers.storage.models import utcnow

    cfg = settings()
    seconds = parse_duration(every)
    spec = canonical_spec(source)
    names = resolve_targets(cfg, target)
    with session_scope(cfg.resolved_database_url) as s:
        expiry = parse_duration(expire_after) if expire_after else None
        watch = watches.add(s, spec, names, seconds, utcnow(), all_frames=all_frames, expire_after_seconds=expiry)
        watch_id = watch.id
    console.print(f"Watch [bold]{watch_id}[/]: {cell(spec, 500)} every {format_duration(seconds)} for {', '.join(names)}")
    if seconds < cfg.watch_poll_interval:
        warn(
            f"beat looks for due watches every {format_duration(cfg.watch_poll_interval)} (watch_poll_interval): "
            f"this watch runs at most that often"
        )


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="One JSON object per watch.")) -> None:
    """Watches, with how their last run went (videos listed and queued, warnings, errors)."""
    from workers.storage import watches
    from workers.storage.db import session_scope

    cfg = settings()
    with session_scope(cfg.resolved_database_url) as s:
        rows = [watch_json(w) for w in watches.all_watches(s)]
    if as_json:
        for row in rows:
            print(json.dumps(row))
        return
    if not rows:
        console.print("No watches. Add one with `tiktok-tracker watch add SOURCE --every 15m --target NAME`.")
        return
    ids = [str(r["id"]) for r in rows]
    table = Table(
        id_column("id", ids),
        Column("source", overflow="fold", ratio=2),
        Column("targets", overflow="fold"),
        "every",
        "last run",
        "next run",
        "listed / queued",
        "problems",
    )
    for r in rows:
        problems = [f"[yellow]{cell(w)}[/]" for w in r["last_warnings"]]
        if r["last_error"]:
            problems.append(f"[red]{cell(r['last_error'], 500)}[/]")
        counts = (
            "" if r["last_run_at"] is None else f"{r['last_listed'] if r['last_listed'] is not None else '-'} / {r['last_enqueued'] or 0}"
        )
        table.add_row(
            str(r["id"]) + ("" if r["enabled"] else " (off)"),
            cell(r["source"], 300),
            cell(", ".join(r["targets"])),
            r["every"],
            (r["last_run_at"] or "never")[:19].replace("T", " "),
            (r["next_run_at"] or "")[:19].replace("T", " "),
            counts,
            "\n".join(problems),
        )
    console.print(table)


@app.command("remove")
def remove(watch_id: int = typer.Argument(..., metavar="ID")) -> None:
    """Delete a watch (the videos it found stay)."""
    from workers.storage import watches
    from workers.storage.db import session_scope

    cfg = settings()
    with session_scope(cfg.resolved_database_url) as s:
        watch = watches.remove(s, watch_id)
        source = watch.source
    console.print(f"Removed watch {watch_id} ({cell(source, 500)}).")


@app.command("run")
def run(
    watch_id: int | None = typer.Argument(None, metavar="[ID]", help="Run this watch now (default: every watch that is due)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per run."),
) -> None:
    """Run a watch now, in this process: list its source and queue its new videos for the workers.

    Exit status 1 when a run failed (its error is also stored on the watch).
    """
    from workers.pipeline.tasks import publisher
    from workers.pipeline.watches import run_due_watches, run_watch

    cfg = settings()
    publish = publisher()
    runs = [run_watch(cfg, watch_id, publish, force=True)] if watch_id is not None else run_due_watches(cfg, publish)
    runs = [r for r in runs if r is not None]
    for r in runs:
        if as_json:
            print(json.dumps(r.to_json()), flush=True)
            continue
        listed = "not listed" if r.listed is None else f"listed {r.listed}"
        console.print(f"watch {r.watch_id} ({cell(r.source, 300)}): {listed}, queued {len(r.jobs)}", highlight=False)
        for w in r.warnings:
            warn(f"watch {r.watch_id}: {w}")
        if r.error:
            console.print(f"  [red]error:[/] {cell(r.error, 1000)}", highlight=False)
    if not runs and not as_json:
        console.print("No watch is due.")
    if any(r.error for r in runs):
        raise typer.Exit(1)
