"""Configuration of the pipeline: Celery settings and routing, the worker
command's choices, docker-compose.yml and infra/ (Flower's authentication: test_daemons.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import need
from tests.pipeline_support import ROOT
from workers.services.worker_plan import UnknownQueue, WorkerPlan, default_concurrency, parse_queues
from workers.pipeline.celery_app import PERIODIC, QUEUES, ROUTES, celery_config
from workers.settings import Settings

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

COMPOSE = ROOT / "docker-compose.yml"


def test_celery_is_configured_for_long_unreliable_tasks():
    conf = celery_config(Settings(broker_url="redis://example:6379/3", broker_visibility_timeout=120))
    assert conf["broker_url"] == "redis://example:6379/3"
    assert conf["task_acks_late"] and conf["task_reject_on_worker_lost"]
    assert conf["worker_prefetch_multiplier"] == 1
    assert conf["broker_transport_options"]["visibility_timeout"] == 120
    assert conf["result_backend"] is None and conf["task_ignore_result"]
    assert conf["accept_content"] == ["json"]


def test_each_stage_is_routed_to_the_queue_of_its_kind_of_work():
    routes = celery_config(Settings())["task_routes"]
    assert {name: route["queue"] for name, route in routes.items()} == {
        "download": "io", "alert": "io", "housekeeping": "io", "run_watches": "io", "alert_followups": "io",
        "reap_stalled": "io", "prune": "io",
        "frames": "cpu", "verdict": "cpu",
        "score": "score", "timeline": "score",  # a positive's remaining frames, after its alert (a lower priority)
    }
    assert set(ROUTES.values()) == set(QUEUES)


def test_the_stage_table_gives_tasks_statuses_and_resume_points():
    """Every stage and periodic task is a registered task of its name; the statuses a video
    shows are the words every release has stored and shown; a stalled video resumes where its status was set."""
    from workers.pipeline import stages, tasks

    assert [s.name for s in stages.STAGES] == ["download", "frames", "score", "verdict", "alert"]
    assert all(name in tasks.app.tasks for name in ROUTES)
    assert list(tasks.STAGE_TASKS) == [s.name for s in stages.STAGES]
    assert stages.STATUSES == ("queued", "downloading", "extracting", "scoring", "done", "failed")
    assert stages.RESUME_AT == {"queued": "download", "downloading": "download", "extracting": "frames", "scoring": "score"}
    assert {name: tasks.app.tasks[name].send_events for name in PERIODIC} == {
        "housekeeping": True, "prune": True, "reap_stalled": False, "run_watches": False, "alert_followups": False,
    }
    assert celery_config(Settings(prune_interval=3600))["beat_schedule"]["prune"]["schedule"] == 3600  # daily by default


def test_beat_runs_watches_and_alert_followups_every_poll_interval():
    from workers.pipeline import tasks

    schedule = celery_config(Settings(watch_poll_interval=7))["beat_schedule"]
    for name in ("run_watches", "alert_followups"):
        assert schedule[name]["task"] == name and schedule[name]["schedule"] == 7
        assert schedule[name]["options"]["expires"] == 7  # a tick nobody took in time is dropped
        assert name in tasks.app.tasks


def test_tasks_are_registered_under_the_routed_names():
    from workers.pipeline import tasks

    chain = tasks.video_chain(7, "job-7")
    assert [t.task for t in chain.tasks] == ["download", "frames", "score", "verdict", "alert"]
    assert chain.tasks[0].options["task_id"] == "job-7"
    assert all(t.args == (7,) for t in chain.tasks)  # ids only through the broker


def test_pipeline_settings_are_documented():
    for name in ("broker_url", "broker_visibility_timeout", "keep_videos", "task_retry_window", "stall_timeout", "housekeeping_interval"):
        assert Settings.model_fields[name].description, name


def test_worker_queue_choices():
    assert parse_queues("score") == ["score"]
    assert parse_queues("io, cpu,io") == ["io", "cpu"]
    with pytest.raises(UnknownQueue):
        parse_queues("gpu")
    assert default_concurrency(["score"], []) == 1
    assert default_concurrency(["score"], ["0", "1"]) == 2
    assert default_concurrency(["cpu"], []) == (os.cpu_count() or 1)
    assert default_concurrency(["io"], []) == 4


def test_worker_plan_reaches_the_pool_processes_as_settings(monkeypatch):
    """``tiktok-tracker worker`` puts its plan in the environment; each pool process reads it as
    settings (``worker_queues``, ``score_gpus``) when it starts: its GPU, what it warms."""
    from workers.pipeline import tasks
    from workers.settings import get_settings

    plan = WorkerPlan(["score"], 2, ["3", "4"])
    for name, value in plan.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # restored afterwards
    warmed = []
    monkeypatch.setattr(tasks, "warm_database", lambda: warmed.append("database"))
    monkeypatch.setattr(tasks, "warm_models", lambda: warmed.append("models"))
    get_settings.cache_clear()
    try:
        assert (get_settings().worker_queues, get_settings().score_gpus) == (["score"], ["3", "4"])
        tasks._fresh_process()
    finally:
        get_settings.cache_clear()
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "3" and warmed == ["database", "models"]


def test_a_worker_keeps_its_node_name_across_restarts():
    """One name per host and queues (Flower lists a restarted worker as the same one, not one more
    dead worker); ``--name`` gives a second worker of the same queues its own."""
    plan = WorkerPlan(["io", "cpu"], 2, [])
    argv = plan.argv("info")
    assert argv[argv.index("--hostname") + 1] == "io+cpu@%h" and argv == plan.argv("info")
    named = WorkerPlan(["score"], 1, []).argv("info", "score2@%h")
    assert named[named.index("--hostname") + 1] == "score2@%h"


# --- docker-compose.yml and infra/ ----------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_has_every_service(compose):
    services = compose["services"]
    assert {"redis", "postgres", "flower", "beat", "worker-io", "worker-cpu", "worker-score", "worker-score-gpu"} <= set(services)
    for queue in QUEUES:
        assert services[f"worker-{queue}"]["command"] == ["tiktok-tracker", "worker", "--queues", queue]
    assert services["beat"]["command"] == ["tiktok-tracker", "beat"]
    for name in ("redis-data", "postgres-data", "media"):
        assert name in compose["volumes"]


def test_compose_persists_the_broker_and_the_database(compose):
    redis, postgres = compose["services"]["redis"], compose["services"]["postgres"]
    assert any(v.startswith("redis-data:") for v in redis["volumes"])
    conf = (ROOT / "infra" / "redis.conf").read_text()
    assert "appendonly yes" in conf.splitlines()
    assert any(v.startswith("postgres-data:/var/lib/postgresql/data") for v in postgres["volumes"])
    assert "healthcheck" in redis and "healthcheck" in postgres


def test_compose_shares_broker_database_and_media_between_workers(compose):
    services = compose["services"]
    workers = [services[n] for n in ("worker-io", "worker-cpu", "worker-score", "worker-score-gpu", "beat")]
    for w in workers:
        env = w["environment"]
        assert env["TT_BROKER_URL"].startswith("redis://") and "@redis:6379" in env["TT_BROKER_URL"]
        assert env["TT_DATABASE_URL"].startswith("postgresql+psycopg://")
        assert "media:/data" in w["volumes"]


def test_compose_gpu_profile_runs_the_score_worker_on_nvidia(compose):
    gpu = compose["services"]["worker-score-gpu"]
    assert gpu["profiles"] == ["gpu"]
    assert gpu["build"]["dockerfile"] == "infra/Dockerfile.gpu"
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert "score" in gpu["command"]


def test_compose_flower_is_local_and_authenticated(compose):
    flower = compose["services"]["flower"]
    (port,) = flower["ports"]
    assert port.startswith("${FLOWER_BIND_ADDRESS:-127.0.0.1}:")
    assert {"FLOWER_USER", "FLOWER_PASSWORD"} <= set(flower["environment"])
    assert flower["environment"]["FLOWER_ADDRESS"] == "0.0.0.0"  # inside the container; published on 127.0.0.1
    assert "tiktok-tracker flower" in (ROOT / "infra" / "flower.sh").read_text()  # auth enforced there (test_daemons.py)
    for service in ("redis", "postgres"):
        assert all(p.startswith("${TT_BIND_ADDRESS:-127.0.0.1}:") for p in compose["services"][service]["ports"])


def test_compose_monitoring_profile_scrapes_an_authenticated_exporter(compose):
    """``--profile monitoring``: the exporter (basic auth: it listens beyond loopback inside its
    container) and a Prometheus with the project's rules, both published on localhost only."""
    metrics, prometheus = compose["services"]["metrics"], compose["services"]["prometheus"]
    assert metrics["profiles"] == prometheus["profiles"] == ["monitoring"]
    assert metrics["command"] == ["tiktok-tracker", "metrics", "--host", "0.0.0.0", "--port", "9808"]
    assert "TT_METRICS_PASSWORD" in metrics["environment"] and "TT_METRICS_PASSWORD" in prometheus["environment"]
    assert metrics["ports"] == ["${METRICS_BIND_ADDRESS:-127.0.0.1}:${METRICS_HOST_PORT:-9808}:9808"]
    assert prometheus["ports"] == ["${PROMETHEUS_BIND_ADDRESS:-127.0.0.1}:${PROMETHEUS_HOST_PORT:-9090}:9090"]
    assert "./infra/prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    scrape = yaml.safe_load((ROOT / "infra" / "prometheus" / "prometheus.yml").read_text())
    (job,) = scrape["scrape_configs"]
    assert job["static_configs"] == [{"targets": ["metrics:9808"]}] and job["basic_auth"]["username"] == "prometheus"
    assert scrape["rule_files"] == ["rules.yml"]


def test_dockerfiles_and_docs_exist():
    for path in ("infra/Dockerfile.cpu", "infra/Dockerfile.gpu", "infra/env.example", "infra/config/tiktok-tracker.toml", "docs/pipeline.md"):
        assert (ROOT / path).is_file(), path
    assert "tensorflow[and-cuda]" in (ROOT / "infra" / "Dockerfile.gpu").read_text()


def test_compose_images_can_be_replaced_and_default_to_the_official_ones(compose):
    """infra/compose-smoke.sh swaps in images built from Debian packages and a wheelhouse."""
    services = compose["services"]
    assert services["redis"]["image"] == "${TT_REDIS_IMAGE:-redis:7-alpine}"
    assert services["postgres"]["image"] == "${TT_POSTGRES_IMAGE:-postgres:16-alpine}"
    for name in ("worker-io", "worker-score-gpu"):
        args = services[name]["build"]["args"]
        assert args["BASE_IMAGE"] == "${TT_BASE_IMAGE:-python:3.11-slim-bookworm}"
        assert args["PIP_OFFLINE"] == "${TT_PIP_OFFLINE:-}"
    for dockerfile in ("Dockerfile.cpu", "Dockerfile.gpu"):
        text = (ROOT / "infra" / dockerfile).read_text()
        assert "ARG BASE_IMAGE=python:3.11-slim-bookworm" in text.splitlines()
        assert text.count("FROM ${BASE_IMAGE}") == 2  # the wheelhouse stays in the build stage
        assert "--no-index --find-links /wheels" in text


def test_compose_s3_profile_runs_a_local_s3_server_for_every_service(compose):
    services = compose["services"]
    s3 = services["s3"]
    assert s3["profiles"] == ["s3"]
    assert s3["image"] == services["worker-io"]["image"] and s3["build"] == services["worker-io"]["build"]
    assert "exec moto_server -H 0.0.0.0 -p 5000" in " ".join(s3["command"])
    assert "ports" not in s3  # reached by the services only, on the compose network
    for name in ("worker-io", "worker-cpu", "worker-score", "worker-score-gpu", "beat", "flower", "web"):
        env = services[name]["environment"]
        assert {"TT_MEDIA_URL", "TT_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(env), name
    # moto is for trying the store out: in the wheelhouse, never a dependency of the project.
    assert "moto[server]" in (ROOT / "infra" / "wheelhouse.txt").read_text().splitlines()
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert not any(d.startswith("moto") for d in dependencies)


def test_the_package_ships_every_data_file_it_has():
    """An image installs the package (not editable): templates, static files and migrations must be in it."""
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["workers"]
    package = ROOT / "workers"
    shipped = {path for pattern in patterns for path in package.glob(pattern)}
    data = {path for path in package.rglob("*") if path.is_file() and path.suffix not in (".py", ".pyc") and "__pycache__" not in path.parts}
    assert data, "no data files found"
    assert sorted(str(p.relative_to(package)) for p in data - shipped) == []


def test_compose_file_validates_with_docker_compose(tmp_path):
    """``docker compose config`` where the plugin exists; else Compose v1 (no top-level ``name``)."""
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        cmd, path = ["docker", "compose"], COMPOSE
    elif shutil.which("docker-compose"):
        path = tmp_path / "docker-compose.yml"
        path.write_text("".join(line for line in COMPOSE.read_text().splitlines(True) if not line.startswith("name:")))
        cmd = ["docker-compose"]
    else:
        need(False, "neither `docker compose` nor `docker-compose` is installed (.ci/run installs docker-compose)")
    for profile in ([], ["--profile", "gpu"], ["--profile", "s3"], ["--profile", "monitoring"]):
        proc = subprocess.run([*cmd, "-f", str(path), "--project-directory", str(ROOT), *profile, "config", "-q"],
                              capture_output=True, text=True, cwd=ROOT)
        assert proc.returncode == 0, proc.stderr


def test_stage_retries_span_the_retry_window_even_with_the_shortest_jitter():
    from workers.retrying import jittered_backoff, retries_spanning

    settings = Settings()
    assert settings.task_retry_window >= 600  # a 10-minute outage is outlasted by default
    count = retries_spanning(settings.task_retry_window, settings.task_retry_backoff, settings.task_retry_backoff_max)
    shortest = sum(jittered_backoff(n, settings.task_retry_backoff, settings.task_retry_backoff_max, lambda: 0.0) for n in range(count))
    longest = sum(jittered_backoff(n, settings.task_retry_backoff, settings.task_retry_backoff_max, lambda: 0.999) for n in range(count))
    assert settings.task_retry_window <= shortest <= longest < 2 * settings.task_retry_window + settings.task_retry_backoff_max
    assert max(jittered_backoff(n, 2, 60, lambda: 0.999) for n in range(count)) <= 60
    assert settings.stall_timeout > settings.task_retry_window


def test_beat_runs_the_reaper():
    schedule = celery_config(Settings(reaper_interval=7))["beat_schedule"]["reap_stalled"]
    assert schedule["task"] == "reap_stalled" and schedule["schedule"] == 7


# --- infra/systemd: the units of a deployment without Docker ------------------------------

SYSTEMD = ROOT / "infra" / "systemd"


def test_systemd_units_verify_and_run_every_process(tmp_path):
    """A worker per queue (a template), beat, web, Flower and the metrics exporter, and a timer
    that runs ``health``, one environment file for all; each unit passes ``systemd-analyze
    verify`` without a warning, its command a real `tiktok-tracker` one."""
    import sys

    units = sorted(p.name for p in SYSTEMD.glob("*.service"))
    assert units == ["tiktok-tracker-beat.service", "tiktok-tracker-flower.service", "tiktok-tracker-health.service",
                     "tiktok-tracker-metrics.service", "tiktok-tracker-web.service", "tiktok-tracker-worker@.service"]
    env = (SYSTEMD / "tiktok-tracker.env").read_text()
    for name in ("TT_BROKER_URL", "TT_DATABASE_URL", "TT_DATA_DIR", "TT_MODELS_DIR", "FLOWER_USER", "FLOWER_PASSWORD"):
        assert f"\n{name}=" in env, name
    for unit in units:
        text = (SYSTEMD / unit).read_text()
        assert "EnvironmentFile=/etc/tiktok-tracker/env" in text, unit
        command = next(line for line in text.splitlines() if line.startswith("ExecStart=")).split()[1]
        assert command in {"worker", "beat", "web", "flower", "metrics", "health"} and command in unit, unit
    need(shutil.which("systemd-analyze") is not None, "systemd-analyze is not installed (apt install systemd)")
    cli = Path(sys.executable).with_name("tiktok-tracker")
    assert cli.exists(), cli
    for unit in units:  # the command as installed here, instead of /opt/tiktok-tracker
        text = (SYSTEMD / unit).read_text().replace("/opt/tiktok-tracker/.venv/bin/tiktok-tracker", str(cli))
        (tmp_path / unit.replace("@.", "@io.")).write_text(text)
    shutil.copy(SYSTEMD / "tiktok-tracker-health.timer", tmp_path)
    proc = subprocess.run(["systemd-analyze", "verify", *sorted(p.name for p in tmp_path.iterdir())],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stderr.strip() == "", proc.stderr
