"""Review commands: ``web`` (the review app), ``review`` (confirm or reject a
detection from the shell) and ``rescan`` (rescore stored videos with a
target's new version)."""

from __future__ import annotations

import typer

from workers.cli.common import console, settings


def web(
    host: str | None = typer.Option(None, "--host", help="Address to bind (default web_host: 127.0.0.1). Others need TT_WEB_PASSWORD."),
    port: int | None = typer.Option(None, "--port", "-p", min=1, max=65535, help="Port (default web_port: 8080)."),
) -> None:
    """Serve the review app: detections inbox, video timelines, targets, pipeline."""
    from workers.web.app import serve

    serve(settings(), host, port)


def review(
    detection: int = typer.Argument(..., help="Detection id (the web app's inbox, `results --format json`)."),
    verdict: str = typer.Argument(..., metavar="confirmed|rejected"),
    reviewer: str | None = typer.Option(None, "--by", help="Who reviews (recorded with the review)."),
) -> None:
    """Confirm or reject a detection (a rejected one raises no further alerts)."""
    from workers.review.service import review_detection

    row = review_detection(settings(), detection, verdict, reviewer)
    console.print(f"detection {detection}: {row.verdict}")


def rescan(
    target: str = typer.Option(..., "--target", "-t", help="Target whose current version rescores its videos."),
    since: str | None = typer.Option(None, "--since", help="Only videos with a verdict found since (24h, 7d, a date)."),
    all_frames: bool = typer.Option(False, "--all-frames", help="Score every sampled frame (as scan --all-frames)."),
) -> None:
    """Rescore stored videos with the target's current version, where the video is still available."""
    from workers.durations import parse_since
    from workers.review.corrections import rescan as run

    report = run(settings(), target, parse_since(since) if since else None, all_frames)
    console.print(
        f"{target} version {report.version}: {len(report.rescanned)} video(s) rescanned, "
        f"{len(report.unavailable)} no longer available, {len(report.failed)} failed",
        highlight=False,
    )
    if report.failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(web)
    app.command()(review)
    app.command()(rescan)
