"""The pipeline's long-running processes besides workers: ``tiktok-tracker flower``
(real Flower process: authentication on every page, local by default, state under
the data dir) and ``tiktok-tracker beat`` (its ticks reach the broker), plus how
tasks show in Flower (short names, readable arguments)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from base64 import b64encode
from pathlib import Path

from tests.pipeline_support import ROOT, free_port, port_open
from tests.pipeline_support import redis_url  # noqa: F401  (fixture)

CLI = [sys.executable, "-m", "workers.cli.main"]


def _env(tmp_path: Path, **extra: str) -> dict:
    env = {**os.environ, "TT_DATA_DIR": str(tmp_path / "data"), "TT_MODELS_DIR": str(tmp_path / "models")}
    for name in ("FLOWER_USER", "FLOWER_PASSWORD", "FLOWER_ADDRESS", "FLOWER_PORT", "FLOWER_DB", "FLOWER_BASIC_AUTH"):
        env.pop(name, None)
    env.pop("TT_DATABASE_URL", None)
    return {**env, **extra}


def _status(url: str, auth: str | None = None) -> int:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _listening_addresses(port: int) -> set[str]:
    """Local IPv4 addresses with a socket listening on ``port`` (from /proc/net/tcp)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).is_file():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                if len(address) == 8:
                    found.add(".".join(str(int(address[i : i + 2], 16)) for i in (6, 4, 2, 0)))
                else:
                    found.add("::" if set(address) == {"0"} else address)
    return found


def _start(cmd: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def _stop(proc: subprocess.Popen) -> str:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    return out


def test_flower_refuses_to_start_without_credentials(tmp_path):
    for extra in ({}, {"FLOWER_USER": "ann"}, {"FLOWER_PASSWORD": "x"}):
        proc = subprocess.run([*CLI, "flower"], env=_env(tmp_path, **extra), capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, proc.stderr
        assert "FLOWER_USER and FLOWER_PASSWORD" in proc.stderr and "Traceback" not in proc.stderr
    script = subprocess.run(["sh", str(ROOT / "infra" / "flower.sh")], capture_output=True, text=True, timeout=60,
                            env={**_env(tmp_path), "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"})
    assert script.returncode == 2 and "FLOWER_USER and FLOWER_PASSWORD" in script.stderr


def test_flower_asks_for_its_password_everywhere_and_listens_on_localhost(tmp_path, redis_url):  # noqa: F811
    port = free_port()
    env = _env(tmp_path, FLOWER_USER="ann", FLOWER_PASSWORD="s3cret", FLOWER_PORT=str(port), TT_BROKER_URL=redis_url)
    proc = _start([*CLI, "flower"], env)
    try:
        deadline = time.monotonic() + 60
        while not port_open(port):
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "flower did not start"
            time.sleep(0.2)
        assert _listening_addresses(port) == {"127.0.0.1"}
        for path in ("/", "/metrics", "/healthcheck", "/api/workers"):
            url = f"http://127.0.0.1:{port}{path}"
            assert _status(url) == 401, path
            assert _status(url, "ann:wrong") == 401, path
            assert _status(url, "ann:s3cret") == 200, path
        ps = subprocess.run(["ps", "-o", "args=", "-p", str(proc.pid)], capture_output=True, text=True).stdout
        assert "s3cret" not in ps  # the password is not in the process list
    finally:
        out = _stop(proc)
    assert "Traceback" not in out, out
    assert list((tmp_path / "data" / "flower").glob("flower.db*")), "state file under the data dir"


def test_beat_queues_its_ticks_with_the_schedule_under_the_data_dir(tmp_path, redis_url):  # noqa: F811
    import redis

    env = _env(tmp_path, TT_BROKER_URL=redis_url, TT_WATCH_POLL_INTERVAL="1")
    proc = _start([*CLI, "beat", "--loglevel", "INFO"], env)
    client = redis.Redis.from_url(redis_url)
    try:
        deadline = time.monotonic() + 60
        while client.llen("io") < 2:
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "beat queued nothing"
            time.sleep(0.2)
        names = {json.loads(m)["headers"]["task"] for m in client.lrange("io", 0, -1)}
    finally:
        _stop(proc)
    assert names <= {"run_watches", "alert_followups", "housekeeping"} and "run_watches" in names
    assert list((tmp_path / "data").glob("celerybeat-schedule*"))


def test_tasks_have_short_names_and_readable_arguments():
    from workers.pipeline import tasks

    chain = tasks.video_chain(12, "3f2c-job", "/srv/in/clip one.mp4")
    assert [t.task for t in chain.tasks] == ["download", "frames", "score", "verdict", "alert"]
    labels = {t.options["argsrepr"] for t in chain.tasks}
    assert labels == {"video=12 job=3f2c-job source=clip_one.mp4"}  # every stage: a job id search finds all five
    assert chain.tasks[0].options["task_id"] == "3f2c-job"
    url = tasks.job_label(7, "j", "https://www.tiktok.com/@u/video/123?x=\x1b[2J")
    assert url == "video=7 job=j source=123"
    assert not tasks.run_watches.send_events and not tasks.alert_followups.send_events
    assert tasks.housekeeping.send_events


def test_beat_ticks_send_no_sent_event():
    from celery.signals import beat_init

    from workers.pipeline.celery_app import app

    before = app.conf.task_send_sent_event
    try:
        assert before is True  # enqueue's tasks show in Flower as soon as they are queued
        beat_init.send(sender=type("Service", (), {"app": app})())
        assert app.conf.task_send_sent_event is False
    finally:
        app.conf.task_send_sent_event = before


def test_beat_ticks_log_at_debug_and_workers_name_no_plugins(tmp_path):
    """Beat's "Sending due task" line every 30 s is DEBUG (an INFO log keeps what happened); a process
    opening the database does not log Alembic's "setup plugin" lines (each worker process did, at start)."""
    import logging

    from workers.pipeline.celery_app import demote_ticks

    tick = logging.LogRecord("celery.beat", logging.INFO, __file__, 1, "Scheduler: Sending due task %s (%s)", ("w", "w"), None)
    beat = logging.getLogger("celery.beat")
    level = beat.level
    try:
        beat.setLevel(logging.INFO)
        assert demote_ticks(tick) is False and tick.levelname == "DEBUG"
        beat.setLevel(logging.DEBUG)
        assert demote_ticks(tick) is True
        other = logging.LogRecord("celery.beat", logging.INFO, __file__, 1, "beat: Starting...", (), None)
        assert demote_ticks(other) is True and other.levelname == "INFO"
    finally:
        beat.setLevel(level)
    code = ("import logging; logging.basicConfig(level=logging.INFO)\n"
            f"from workers.storage.db import get_engine; get_engine('sqlite:///{tmp_path / 'x.db'}')")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "Running upgrade" in proc.stderr, proc.stderr
    assert "setup plugin" not in proc.stderr, proc.stderr
