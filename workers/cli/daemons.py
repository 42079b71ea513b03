"""``tiktok-tracker beat`` and ``tiktok-tracker flower``: the pipeline's other
long-running processes (workers: ``tiktok-tracker worker``)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from workers.cli.common import settings
from workers.errors import TrackerError
from workers.pipeline.monitor import DEFAULT_FLOWER_ADDRESS, DEFAULT_FLOWER_PORT, FlowerOptions


def _app():
    cfg = settings()
    if not cfg.broker_url:
        raise TrackerError("no broker configured: set TT_BROKER_URL (e.g. redis://127.0.0.1:6379/0)")
    from workers.pipeline.celery_app import app

    return cfg, app


def beat(
    loglevel: str = typer.Option("INFO", "--loglevel", "-l", help="DEBUG, INFO, WARNING or ERROR."),
) -> None:
    """Run celery beat: watches, alert follow-ups, housekeeping. Exactly one per deployment.

    Its schedule file is DATA_DIR/celerybeat-schedule."""
    from workers.pipeline.monitor import run_beat

    cfg, app = _app()
    run_beat(app, cfg, loglevel)


def flower(
    address: str = typer.Option(
        DEFAULT_FLOWER_ADDRESS,
        "--address",
        envvar="FLOWER_ADDRESS",
        help="Interface to listen on; keep it local or private (docs/pipeline.md, Flower).",
    ),
    port: int = typer.Option(DEFAULT_FLOWER_PORT, "--port", envvar="FLOWER_PORT", min=1, max=65535),
    state_file: Path | None = typer.Option(
        None, "--state-file", envvar="FLOWER_DB", help="Flower's state file.", show_default="DATA_DIR/flower/flower.db"
    ),
) -> None:
    """Run Flower, the Celery monitor, with basic auth (FLOWER_USER, FLOWER_PASSWORD; required).

    Every page, /metrics and /healthcheck included, asks for the password."""
    from workers.pipeline.monitor import run_flower

    opts = FlowerOptions(
        user=os.environ.get("FLOWER_USER", ""),
        password=os.environ.get("FLOWER_PASSWORD", ""),
        address=address,
        port=port,
        state_file=state_file,
    )
    opts.credentials()  # refuse before connecting to anything
    cfg, app = _app()
    run_flower(app, opts, cfg)


def register(app: typer.Typer) -> None:
    app.command()(beat)
    app.command()(flower)
