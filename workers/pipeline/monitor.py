"""Celery beat and Flower, as run by ``tiktok-tracker beat`` / ``tiktok-tracker flower``
(and by docker-compose, through the same commands).

Beat keeps its schedule file under the data dir. Flower is never served without
authentication: it needs a user and a password, listens on 127.0.0.1 unless
told otherwise, and keeps its state file under the data dir. Flower itself
answers ``/metrics`` and ``/healthcheck`` to anyone; here they ask for the
same password as every other page.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from workers.errors import TrackerError
from workers.settings import Settings

DEFAULT_FLOWER_ADDRESS = "127.0.0.1"
DEFAULT_FLOWER_PORT = 5555


def beat_schedule_file(settings: Settings) -> Path:
    """Where beat remembers when each periodic task last ran."""
    return Path(settings.data_dir) / "celerybeat-schedule"


def flower_state_file(settings: Settings) -> Path:
    """Flower's persistent state (task history across restarts)."""
    return Path(settings.data_dir) / "flower" / "flower.db"


@dataclass(frozen=True)
class FlowerOptions:
    user: str
    password: str
    address: str = DEFAULT_FLOWER_ADDRESS
    port: int = DEFAULT_FLOWER_PORT
    state_file: Path | None = None

    def credentials(self) -> str:
        """``user:password`` for Flower's basic auth; refused when missing or unusable."""
        if not self.user or not self.password:
            raise TrackerError("flower: set FLOWER_USER and FLOWER_PASSWORD: the monitor is not served without authentication")
        if ":" in self.user or "," in self.user + self.password:
            raise TrackerError("flower: FLOWER_USER may not contain ':' or ',', nor FLOWER_PASSWORD ','")
        return f"{self.user}:{self.password}"


def require_auth_on_open_endpoints() -> None:
    """Make Flower's ``/metrics`` and ``/healthcheck`` ask for the password like every page."""
    from flower.views import monitor
    from tornado.web import authenticated

    for handler in (monitor.Metrics, monitor.Healthcheck):
        if not getattr(handler.get, "tt_authenticated", False):
            handler.get = authenticated(handler.get)
            handler.get.tt_authenticated = True


def flower_argv(opts: FlowerOptions, settings: Settings) -> list[str]:
    """``celery flower`` arguments. The credentials travel in the environment
    (``FLOWER_BASIC_AUTH``, see ``run_flower``), never in the process list."""
    state = opts.state_file or flower_state_file(settings)
    return [
        "flower",
        f"--address={opts.address}",
        f"--port={opts.port}",
        "--persistent=True",
        f"--db={state}",
        "--max_tasks=100000",
        "--purge_offline_workers=600",
    ]


def run_flower(app, opts: FlowerOptions, settings: Settings) -> None:
    """Serve Flower in this process until it is stopped."""
    os.environ["FLOWER_BASIC_AUTH"] = opts.credentials()
    os.environ.pop("FLOWER_UNAUTHENTICATED_API", None)  # Flower's switch to open the API: never
    state = opts.state_file or flower_state_file(settings)
    state.parent.mkdir(parents=True, exist_ok=True)
    require_auth_on_open_endpoints()
    app.start(flower_argv(opts, settings))


def run_beat(app, settings: Settings, loglevel: str = "INFO") -> None:
    """Run celery beat (exactly one per deployment) in this process."""
    schedule = beat_schedule_file(settings)
    schedule.parent.mkdir(parents=True, exist_ok=True)
    app.start(["beat", "--loglevel", loglevel.upper(), "--schedule", str(schedule)])
