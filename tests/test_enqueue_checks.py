"""``enqueue`` refuses at once what is sure to fail (a non-video file, a URL the
download policy refuses): one line, exit status 2, nothing queued or recorded.
What only the pipeline can tell (a video that opens but does not decode) still
fails there with its reason: tests/test_pipeline.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pipeline_support import free_port, redis_url  # noqa: F401  (fixture)
from tests.videos import truncate, write_video

CLI = [sys.executable, "-m", "workers.cli.main"]


@pytest.fixture()
def env(tmp_path):
    models = tmp_path / "models" / "ann"
    models.mkdir(parents=True)
    (models / "target.json").write_text(json.dumps({"kind": "face", "name": "ann", "version": "v1"}))
    env = {**os.environ, "TT_DATA_DIR": str(tmp_path / "data"), "TT_MODELS_DIR": str(tmp_path / "models"),
           # nobody listens there: a call that passes the checks stops at the broker (also exit 2, another message)
           "TT_BROKER_URL": f"redis://127.0.0.1:{free_port()}/0", "TT_BROKER_CONNECT_TIMEOUT": "1"}
    for name in ("TT_DATABASE_URL", "TT_ALLOW_HOSTS"):
        env.pop(name, None)
    return env


def enqueue(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, "enqueue", *args, "--target", "ann"], env=env, capture_output=True, text=True, timeout=120)


def assert_refused(proc: subprocess.CompletedProcess, *words: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    line, = proc.stderr.strip().splitlines()  # one line, no traceback
    assert line.startswith("error: nothing queued: "), line
    for word in words:
        assert word in line, line


def assert_nothing_recorded(tmp_path: Path) -> None:
    db = tmp_path / "data" / "tiktok-tracker.db"
    if db.exists():
        import sqlite3

        with sqlite3.connect(db) as conn:
            assert conn.execute("select count(*) from videos").fetchone() == (0,)


def test_a_text_file_named_mp4_is_refused(env, tmp_path):
    notes = tmp_path / "notes.mp4"
    notes.write_text("this is a shopping list, not a video\n")
    assert_refused(enqueue(env, str(notes)), "notes.mp4", "not a readable video")
    truncated = truncate(write_video(tmp_path / "whole.mp4", seconds=2), tmp_path / "cut.mp4", keep=0.3)
    proc = enqueue(env, str(notes), str(truncated))
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr
    *refused, last = proc.stderr.strip().splitlines()  # each refused file on its own line, then why nothing is queued
    assert [line.split(": ")[0] for line in refused] == ["refused"] * 2, refused
    assert "notes.mp4" in refused[0] and "cut.mp4" in refused[1] and last == "error: nothing queued: all 2 refused", proc.stderr
    assert_nothing_recorded(tmp_path)


def test_one_bad_file_does_not_block_a_folder(env, tmp_path, redis_url):
    """The good files of a folder are queued; each refused one is named on its own line; exit status 1."""
    folder = tmp_path / "folder"
    folder.mkdir()
    write_video(folder / "a.mp4", seconds=1)
    write_video(folder / "b.mp4", seconds=1)
    (folder / "empty.mp4").write_bytes(b"")
    proc = enqueue({**env, "TT_BROKER_URL": redis_url}, str(folder))
    assert proc.returncode == 1, proc.stderr
    jobs = [line.split("\t") for line in proc.stdout.splitlines()]
    assert sorted(Path(source).name for _job, source in jobs) == ["a.mp4", "b.mp4"], proc.stdout
    refused, = proc.stderr.strip().splitlines()
    assert refused.startswith("refused: ") and "empty.mp4" in refused and "empty file" in refused, refused


@pytest.mark.parametrize("url, reason", [
    ("http://127.0.0.1:8000/video.mp4", "loopback"),
    ("http://169.254.169.254/latest/meta-data/", "metadata"),
    ("http://10.1.2.3/v.mp4", "private"),
    ("file:///etc/passwd", "only http and https"),
])
def test_a_url_the_download_policy_refuses_is_refused(env, tmp_path, url, reason):
    assert_refused(enqueue(env, url), reason, "TT_ALLOW_HOSTS" if reason != "only http and https" else "")
    assert_nothing_recorded(tmp_path)


def test_allowed_hosts_and_good_files_pass_the_checks(env, tmp_path):
    good = write_video(tmp_path / "good.mp4", seconds=1)
    proc = enqueue({**env, "TT_ALLOW_HOSTS": "127.0.0.1"}, "http://127.0.0.1:8000/video.mp4", str(good))
    assert proc.returncode == 2 and "cannot reach the broker" in proc.stderr, proc.stderr
    assert_nothing_recorded(tmp_path)
