"""Entry point of the ``tiktok-tracker`` command."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.table import Column, Table

from workers.cli import alerts, daemons, pipeline, review, targets, users, watches
from workers.cli.common import BackbonePreprocessing, BackboneWeights, cell, console, err_console, progress_bar, settings
from workers.errors import TrackerError
from workers.settings import env_name

app = typer.Typer(
    help="Find a face or a symbol in short videos (TikTok and others).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(targets.app, name="target")
app.add_typer(watches.app, name="watch")
app.add_typer(alerts.app, name="alerts")
app.add_typer(users.app, name="user")


@app.command()
def scan(
    paths: list[Path] = typer.Argument(..., help="Video files or folders of videos."),
    target: list[str] = typer.Option(..., "--target", "-t", help="Target name; repeat for several (one shared backbone pass)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per (video, target) line."),
    force: bool = typer.Option(False, "--force", help="Rescore videos already scanned for the same target version."),
    all_frames: bool = typer.Option(
        False, "--all-frames", help="Score every sampled frame (no early verdict, no reuse of near-duplicate frames' scores)."
    ),
    backbone_weights: str | None = BackboneWeights,
    backbone_preprocessing: str | None = BackbonePreprocessing,
) -> None:
    """Scan local videos in-process; results go to the database (SQLite by default).

    Exit status: 0 when every video was scanned, 1 when some failed (their rows
    say why), 2 on a usage or setup error.
    """
    from workers.scan import Scanner
    from workers.video.files import expand_paths

    cfg = settings()
    files = expand_paths(paths)
    if not files:
        raise TrackerError(f"no video files in {', '.join(map(str, paths))}")
    scanner = Scanner.for_names(
        cfg,
        target,
        all_frames=all_frames,
        backbone_weights=backbone_weights,
        backbone_preprocessing=backbone_preprocessing,
    )
    rows = []
    with progress_bar("videos", total=len(files), enabled=not as_json or err_console.is_terminal) as advance:
        advance.progress.update(advance.task, description=f"scanning {cell(files[0].name, 40)}")
        for i, (_, batch) in enumerate(scanner.scan_files(files, force=force)):
            rows.extend(batch)
            if as_json:
                for row in batch:
                    print(json.dumps(row.to_json()), flush=True)
            if i + 1 < len(files):
                advance.progress.update(advance.task, description=f"scanning {cell(files[i + 1].name, 40)}")
            advance()
    if not as_json:
        table = Table("target", "verdict", "positive / frames", "first seen at", "note")
        table.columns.insert(0, Column("video", overflow="fold", ratio=2))
        for r in rows:
            colour = {"positive": "green", "negative": "white", "failed": "red"}[r.verdict]
            stamps = ", ".join(f"{t:.1f}s" for t in r.positive_timestamps[:3])
            scored = f" (scored {r.scored_frames})" if r.scored_frames and r.scored_frames < r.frames else ""
            if r.reused_frames:
                scored += f" ({r.reused_frames} near-duplicates)"
            note = r.error or ("cached" if r.cached else "")
            table.add_row(
                cell(r.video, None),
                cell(r.target),
                f"[{colour}]{r.verdict}[/]",
                f"{r.positive_frames}/{r.frames}{scored}",
                stamps,
                cell(note, 500),
            )
        console.print(table)
    if any(r.verdict == "failed" for r in rows):
        raise typer.Exit(1)


@app.command()
def demo(
    workdir: Path = typer.Option(Path("data/demo"), "--workdir", help="Where the demo photo and videos are written."),
) -> None:
    """Offline end-to-end demo: enrol a face from a bundled photo, scan two generated videos."""
    from workers.services.demo import TARGET, run_demo

    cfg = settings()
    said = {
        "enrol": f"1/3 Enrolling face target [bold]{TARGET}[/] from scikit-image's astronaut photo",
        "videos": "2/3 Generating two videos: one shows her, one shows other people and scenes",
        "scan": "3/3 Scanning both",
    }
    result = run_demo(cfg, workdir, on_step=lambda step: console.print(said[step]))
    table = Table("video", "verdict", "matching frames", "at")
    for path, r in result.rows:
        colour = {"positive": "green", "negative": "white", "failed": "red"}[r.verdict]
        table.add_row(
            path.name, f"[{colour}]{r.verdict}[/]", f"{r.positive_frames}/{r.frames}", ", ".join(f"{t:.0f}s" for t in r.positive_timestamps)
        )
    console.print(table)
    console.print(
        f"Results are in {cfg.resolved_database_url}. Next: `tiktok-tracker target add-face NAME PHOTOS...` and `tiktok-tracker scan VIDEOS --target NAME`."
    )


pipeline.register(app)
daemons.register(app)
review.register(app)


@app.command()
def config(
    as_json: bool = typer.Option(False, "--json"),
    wide: bool = typer.Option(False, "--wide", "-w", help="Also each setting's environment variable and meaning."),
) -> None:
    """Print the effective settings (environment TT_*, TOML file, defaults).

    The environment variable of a setting is TT_ and its name in capitals."""
    cfg = settings()
    values = cfg.model_dump(mode="json")
    if as_json:
        print(json.dumps(values, indent=2))
        return
    fields = type(cfg).model_fields
    columns = [Column("setting", no_wrap=True, min_width=max(map(len, fields))), Column("value", overflow="fold", ratio=2)]
    if wide:
        columns[1:1] = [Column("env", overflow="fold")]
        columns.append(Column("meaning", overflow="fold", ratio=3))
    table = Table(*columns)
    for name, field in fields.items():
        value = values[name]
        if value and any(word in name for word in ("password", "token", "secret")):
            value = "***"
        shown = cell(json.dumps(value) if isinstance(value, (list, dict)) else value, None)
        row = [name, env_name(name), shown, cell(field.description, None)] if wide else [name, shown]
        table.add_row(*row)
    console.print(table)
    if not wide:
        err_console.print("environment variables and meanings: --wide; as JSON: --json", highlight=False)


def main() -> None:
    """Console script: user errors, an unreachable database among them, become one line
    on stderr and exit status 2."""
    from workers.services.database import database_errors

    try:
        with database_errors(lambda: settings().resolved_database_url):
            app()
    except TrackerError as exc:
        err_console.print(f"[bold red]error:[/] {cell(exc, None)}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
