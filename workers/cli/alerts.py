"""``tiktok-tracker alerts ...``: try the alert channels, see the alerts sent."""

from __future__ import annotations

import json

import typer
from rich.table import Column, Table

from workers.cli.common import cell, console, id_column, settings

app = typer.Typer(help="Alert channels and the alerts sent.", no_args_is_help=True)


@app.command("test")
def test(as_json: bool = typer.Option(False, "--json", help="The per-channel report as JSON.")) -> None:
    """Send a sample alert through every configured channel; print each channel's result.

    Exit status 1 when a channel failed.
    """
    from workers.alerts import send_test_alert

    report = send_test_alert(settings())
    if as_json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        table = Table("channel", "result", "attempts", "error")
        for r in report.results:
            table.add_row(cell(r.channel), "[green]ok[/]" if r.ok else "[red]failed[/]", str(r.attempts), cell(r.error, 500))
        console.print(table)
    if report.failures:
        raise typer.Exit(1)


@app.command("list")
def list_(
    limit: int = typer.Option(50, "--limit", "-n", min=1, help="Most recent alerts shown."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per alert."),
) -> None:
    """Recent alerts: video, target, status (sent, held for a digest, failed: retried later)."""
    from workers.storage import alerts
    from workers.storage.db import session_scope
    from workers.storage.models import as_utc

    cfg = settings()
    with session_scope(cfg.resolved_database_url) as s:
        rows = [
            {
                "id": a.id,
                "video_id": a.video_id,
                "url": a.video.source,
                "target": a.target_name,
                "status": a.status,
                "attempts": a.attempts,
                "created_at": as_utc(a.created_at).isoformat(),
                "sent_at": as_utc(a.sent_at).isoformat() if a.sent_at else None,
                "error": a.error,
            }
            for a in alerts.recent(s, limit)
        ]
    if as_json:
        for row in rows:
            print(json.dumps(row))
        return
    if not rows:
        console.print("No alerts yet.")
        return
    colours = {"sent": "green", "held": "yellow", "failed": "red", "pending": "cyan"}
    table = Table(
        id_column("id", [str(r["id"]) for r in rows]), Column("video", overflow="fold"), "target", "status", "attempts", "created", "error"
    )
    for r in rows:
        table.add_row(
            str(r["id"]),
            f"{r['video_id']} {cell(r['url'], 100)}",
            cell(r["target"]),
            f"[{colours.get(r['status'], 'white')}]{r['status']}[/]",
            str(r["attempts"]),
            r["created_at"][:19].replace("T", " "),  # wraps at the space, never cut
            cell(r["error"], 300),
        )
    console.print(table)
