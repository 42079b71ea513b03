"""``tiktok-tracker beat`` and ``tiktok-tracker flower``: the pipeline's other
long-running processes (workers: ``tiktok-tracker worker``)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from workers.cli.common import err_console, settings
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


def metrics(
    host: str | None = typer.Option(None, "--host", help="Address to listen on.", show_default="metrics_host: 127.0.0.1"),
    port: int | None = typer.Option(None, "--port", min=1, max=65535, show_default="metrics_port: 9808"),
) -> None:
    """Serve the pipeline's Prometheus metrics on /metrics: one exporter for every host's workers.

    It reads the database and the broker's Redis (where every worker counts what it did), so one
    scrape target covers the deployment. Beyond loopback it needs TT_METRICS_PASSWORD (basic auth)."""
    import logging

    from workers.services.metrics import check_bind, serve

    cfg = settings()
    host, port = host or cfg.metrics_host, port or cfg.metrics_port
    check_bind(cfg, host)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    err_console.print(f"metrics on http://{host}:{port}/metrics", highlight=False)
    serve(cfg, host, port)


def register(app: typer.Typer) -> None:
    app.command()(beat)
    app.command()(flower)
    app.command()(metrics)
