"""``tiktok-tracker target ...``: train, enrol, list, show, remove, evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from workers.cli.common import BackbonePreprocessing, BackboneWeights, PhaseProgress, cell, console, progress_bar, settings, warn
from workers.errors import BadInputSize
from workers.targets import bundle, published
from workers.verdict import VerdictRule

app = typer.Typer(help="Create and manage targets (what to look for).", no_args_is_help=True)


@app.command("train")
def train(
    name: str = typer.Argument(..., help="Name of the target to create (replaces one of that name)."),
    images: Path = typer.Option(..., "--images", help="Image folder (with --labels) or one sub-folder per class."),
    labels: Path | None = typer.Option(None, "--labels", help="CSV with Image_ID,Class columns."),
    head: str = typer.Option("pooled", "--head", help="Head architecture: pooled (default) or seed (the tutorial's)."),
    epochs: int = typer.Option(20, "--epochs", min=1),
    augment: int = typer.Option(1, "--augment", min=0, help="Augmented copies per image (Keras preprocessing layers)."),
    folds: int = typer.Option(5, "--folds", min=0, help="Grouped validation folds (0: skip validation)."),
    block: int = typer.Option(20, "--block", min=1, help="Consecutive images per validation group."),
    positive_class: str | None = typer.Option(None, "--positive-class", help="Class the target looks for."),
    threshold: float | None = typer.Option(
        None, "--threshold", min=0.0, max=1.0, help="Frame is positive when P(target) >= this.", show_default="0.4 pooled, 0.5 seed"
    ),
    min_fraction: float = typer.Option(
        1 / 3, "--min-fraction", min=0.0, max=1.0, show_default="1/3", help="Verdict: positive frames / sampled frames."
    ),
    min_frames: int = typer.Option(1, "--min-frames", min=1, help="Verdict: at least this many positive frames."),
    with_reviews: bool = typer.Option(
        False, "--with-reviews", help="Add the frames reviewers marked (target / not the target) as labelled examples."
    ),
    backbone_weights: str | None = BackboneWeights,
    backbone_preprocessing: str | None = BackbonePreprocessing,
    input_size: int = typer.Option(
        224,
        "--input-size",
        help="VGG16 input side in pixels: 224, 192, 160 (a multiple of 32, 64-448); recorded in the bundle, scans resize frames to it.",
    ),
) -> None:
    """Train a classifier target from labelled images (and, with --with-reviews, reviewed frames)."""
    from workers.services.training import TrainRequest, UnknownHead, plan_training, run_training

    cfg = settings()
    request = TrainRequest(
        name=name,
        images=images,
        labels=labels,
        head=head,
        epochs=epochs,
        augment=augment,
        folds=folds,
        block=block,
        positive_class=positive_class,
        threshold=threshold,
        min_fraction=min_fraction,
        min_frames=min_frames,
        with_reviews=with_reviews,
        backbone_weights=backbone_weights,
        backbone_preprocessing=backbone_preprocessing,
        input_size=input_size,
    )
    try:
        plan = plan_training(cfg, request)
    except UnknownHead as exc:
        raise typer.BadParameter(str(exc), param_hint="--head") from None
    except BadInputSize as exc:
        raise typer.BadParameter(str(exc), param_hint="--input-size") from None
    for problem in plan.problems:
        warn(problem)
    if with_reviews:
        console.print(f"{plan.reviewed} reviewed frame(s) added as labelled examples")
    console.print(
        f"Training [bold]{cell(name)}[/] on {len(plan.data.examples)} images {cell(plan.data.counts(), None)} "
        f"with {cell(plan.backbone.backbone_identity.describe(), None)}"
    )
    with PhaseProgress(plan.phases) as progress:
        result = run_training(cfg, plan, progress)
    for problem in result.problems:
        warn(problem)
    _print_metrics(result.target.metrics)
    console.print(f"Saved target [bold]{cell(name)}[/] version {result.target.version} to {cell(result.path, None)}")
    _print_published(result.published)


def _print_metrics(metrics: dict) -> None:
    if "accuracy" not in metrics:
        console.print("No validation run (--folds 0).")
        return
    console.print(
        f"Grouped {metrics['folds']}-fold validation: accuracy [bold]{metrics['accuracy']:.3f}[/], "
        f"precision {metrics['precision']:.3f}, recall {metrics['recall']:.3f} "
        f"(tp {metrics['tp']}, fp {metrics['fp']}, fn {metrics['fn']}, tn {metrics['tn']})"
    )


@app.command("add-face")
def add_face(
    name: str = typer.Argument(..., help="Name of the face target (replaces one of that name)."),
    photos: list[Path] = typer.Argument(..., help="Reference photos or folders of photos, one face each."),
    tolerance: float | None = typer.Option(
        None, "--tolerance", help="Max embedding distance for a match.", show_default="TT_FACE_TOLERANCE, 0.5"
    ),
    min_frames: int = typer.Option(2, "--min-frames", min=1, help="Verdict: at least this many matching frames."),
    min_fraction: float = typer.Option(0.0, "--min-fraction", min=0.0, max=1.0, help="Verdict: matching frames / sampled frames."),
) -> None:
    """Enrol a face target from a few reference photos (no training)."""
    from workers.services.enrolment import enrol_face

    enrolled = enrol_face(settings(), name, photos, tolerance, VerdictRule(min_fraction, min_frames))
    for problem in enrolled.problems:
        warn(problem)
    console.print(
        f"Enrolled face target [bold]{name}[/] from {len(enrolled.target.references)} photo(s), version {enrolled.target.version}: {enrolled.path}"
    )
    _print_published(enrolled.published)


def _print_published(where: str | None) -> None:
    if where:
        console.print(f"Published for every worker: {cell(where, None)}")


@app.command("push")
def push(name: str = typer.Argument(..., help="A target saved in TT_MODELS_DIR.")) -> None:
    """Publish a saved target to the media store (TT_MEDIA_URL=s3://...), where workers on every host find it."""
    cfg = settings()
    version, where = published.push(cfg, name)
    console.print(f"Published target [bold]{cell(name)}[/] version {version}: {cell(where, None)}")


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="One JSON object per target.")) -> None:
    """List saved targets and, with an object store (TT_MEDIA_URL=s3://...), the version
    workers load; a damaged bundle is listed with its error."""
    cfg = settings()
    entries = published.listing(cfg)
    if as_json:
        for entry in entries:
            print(json.dumps(entry))
        return
    if not entries:
        console.print(f"No targets in {cell(cfg.models_dir, None)}. Create one with `target train` or `target add-face`.")
        return
    publishing = any("published" in e for e in entries)
    table = Table("name", "kind", "version", "threshold", "verdict rule", "created", *(["workers load"] if publishing else []))
    for e in entries:
        loads = [_published_cell(e)] if publishing else []
        if e.get("error"):
            table.add_row(cell(e["name"]), "[red]damaged[/]", "", "", f"[red]{cell(e['error'], 300)}[/]", "", *loads)
            continue
        rule = e["rule"]
        table.add_row(
            cell(e["name"]),
            cell(e["kind"]),
            cell(e["version"]),
            f"{e['threshold']:.2f}",
            f">= {rule['min_frames']} frames and >= {rule['min_fraction']:.0%}",
            cell(e["created"], 25),
            *loads,
        )
    console.print(table)


def _published_cell(entry: dict) -> str:
    """The version workers load, against the one saved here."""
    version = entry.get("published")
    if not version:
        return "[yellow]not published[/] (target push)" if entry.get("saved") else ""
    if not entry.get("saved"):
        return f"{cell(version)} (published elsewhere)"
    return "this version" if version == entry.get("version") else f"[yellow]{cell(version)}[/] (target push publishes this one)"


@app.command("show")
def show(name: str) -> None:
    """Print a target's bundle metadata (backbone, classes, metrics) as JSON."""
    cfg = settings()
    bundle.load_target(cfg.models_dir, name)  # validates the bundle
    print(json.dumps(bundle.read_meta(bundle.bundle_dir(cfg.models_dir, name)), indent=2, sort_keys=True))


@app.command("remove")
def remove(name: str) -> None:
    """Delete a saved target (its past results stay in the database)."""
    cfg = settings()
    bundle.remove_target(cfg.models_dir, name)
    console.print(f"Removed target {cell(name)}.")


@app.command("eval")
def eval_(
    name: str,
    positive: Path = typer.Option(..., "--positive", help="Folder of videos that show the target."),
    negative: Path = typer.Option(..., "--negative", help="Folder of videos that do not."),
    as_json: bool = typer.Option(False, "--json"),
    backbone_weights: str | None = BackboneWeights,
    backbone_preprocessing: str | None = BackbonePreprocessing,
) -> None:
    """Per-video verdicts and frame metrics on labelled video folders (every frame scored)."""
    from workers.evaluation import evaluate_target

    cfg = settings()
    target = bundle.load_target(cfg.models_dir, name)
    with progress_bar("videos") as advance:
        report = evaluate_target(cfg, target, positive, negative, backbone_weights, backbone_preprocessing, on_video=lambda: advance())
    if as_json:
        print(json.dumps(report.to_json(), indent=2))
        return
    table = Table("video", "expected", "verdict", "positive frames", "error")
    for row in report.rows:
        style = "green" if row.correct else "red"
        table.add_row(
            cell(row.video, None), row.expected, f"[{style}]{row.verdict}[/]", f"{row.positive_frames}/{row.frames}", cell(row.error, 500)
        )
    console.print(table)
    v, f = report.video_metrics, report.frame_metrics
    console.print(
        f"Videos: accuracy {v['accuracy']:.3f}, precision {v['precision']:.3f}, recall {v['recall']:.3f}. "
        f"Frames: {f['positive_rate_in_positive_videos']:.1%} flagged in positive videos, "
        f"{f['positive_rate_in_negative_videos']:.1%} in negative videos."
    )
