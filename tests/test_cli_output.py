"""What the CLI prints, through the real command: tables readable at 80 columns
(``--wide`` and csv/json keep every field), outside text (paths, names, errors)
escaped for the terminal and for rich markup, damaged target bundles listed
with their error, evidence exported as readable files, option defaults shown
in ``--help``."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pipeline_support import redis_url  # noqa: F401  (fixture)
from workers.services.export import RESULT_FIELDS

CLI = [sys.executable, "-m", "workers.cli.main"]
# Paths with a rich closing tag ("[/]": folder "videos [" holding "]"), markup, a terminal
# escape sequence (clear screen) and a newline.
HOSTILE = "odd [red] name \x1b[2J\nnext.mp4"


def run(env: dict, *args: str, columns: int = 80) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], env={**env, "COLUMNS": str(columns)}, capture_output=True, text=True, timeout=300)


def column_text(table: str, index: int) -> str:
    """A table column's text, its folded cells joined and spaces dropped."""
    cells = [line.split("│")[index + 1] for line in table.splitlines() if line.startswith("│")]
    return "".join("".join(cells).split())


def assert_clean(proc: subprocess.CompletedProcess) -> None:
    both = proc.stdout + proc.stderr
    assert "Traceback" not in both and "MarkupError" not in both, both
    assert "\x1b" not in both, both  # no escape sequence reached the terminal


@pytest.fixture(scope="module")
def scanned(tmp_path_factory):
    """A face target, and two scanned demo videos (one positive) under hostile names."""
    from workers.demo_media import demo_reference_photo, make_demo_videos

    root = tmp_path_factory.mktemp("cli-output")
    env = {**os.environ, "TT_DATA_DIR": str(root / "data"), "TT_MODELS_DIR": str(root / "models"), "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("TT_DATABASE_URL", None)
    media = root / "media"
    media.mkdir()
    photo = demo_reference_photo(media)
    with_face, without_face = make_demo_videos(media)
    videos = root / "videos [" / "]"
    videos.mkdir(parents=True)
    hostile = with_face.rename(videos / HOSTILE)
    without_face.rename(videos / "[bold]plain.mp4")
    proc = run(env, "target", "add-face", "astronaut", str(photo))
    assert proc.returncode == 0, proc.stderr
    scan = run(env, "scan", str(videos), "--target", "astronaut")
    assert scan.returncode == 0, scan.stdout + scan.stderr
    return root, env, hostile, scan


def test_scan_table_shows_hostile_paths_as_written(scanned):
    _root, _env, _hostile, scan = scanned
    assert_clean(scan)
    flat = column_text(scan.stdout, 0)
    assert "videos[/]/odd[red]name[2Jnext.mp4" in flat and "[bold]plain.mp4" in flat  # markup shown, not applied


def test_results_table_is_readable_at_80_columns(scanned):
    _root, env, _hostile, _scan = scanned
    proc = run(env, "results")
    assert proc.returncode == 0, proc.stderr
    assert_clean(proc)
    lines = proc.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines)
    header = next(line for line in lines if "verdict" in line)
    for name in ("video", "target", "verdict", "score", "seen at", "source"):
        assert name in header, header
    assert "…" not in header
    assert "positive" in proc.stdout and "negative" in proc.stdout and "astronaut" in proc.stdout
    assert "--wide" in proc.stderr

    wide = run(env, "results", "--wide", columns=200)
    assert_clean(wide)
    wide_header = next(line for line in wide.stdout.splitlines() if "verdict" in line)
    for name in ("job", "author", "caption", "posted", "thumbnail"):
        assert name in wide_header, wide_header

    rows = list(csv.DictReader(io.StringIO(run(env, "results", "--format", "csv").stdout)))
    assert rows and set(rows[0]) == set(RESULT_FIELDS)
    assert any(r["source"].endswith("videos [/]/odd [red] name [2J next.mp4") for r in rows)
    as_json = json.loads(run(env, "results", "--format", "json").stdout)
    assert all(set(r) >= set(RESULT_FIELDS) for r in as_json)


def test_status_of_a_hostile_source(scanned):
    _root, env, _hostile, _scan = scanned
    overview = run(env, "status")
    assert overview.returncode == 0, overview.stderr
    assert_clean(overview)
    (positive,) = [r for r in json.loads(run(env, "results", "--format", "json", "--positive").stdout)]
    one = run(env, "status", str(positive["video_id"]))
    assert one.returncode == 0, one.stderr
    assert_clean(one)
    assert "videos [/]/odd [red] name" in one.stdout and f"tiktok-tracker evidence {positive['video_id']} --out DIR" in one.stdout


def test_evidence_export_writes_readable_thumbnails_named_with_their_time(scanned, tmp_path):
    root, env, _hostile, _scan = scanned
    (positive,) = json.loads(run(env, "results", "--format", "json", "--positive").stdout)
    out = tmp_path / "evidence"
    proc = run(env, "evidence", str(positive["video_id"]), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    (path,) = [Path(line) for line in proc.stdout.splitlines()]
    assert path.parent == out
    assert path.name == f"{positive['video_id']}-astronaut-at-{positive['best_timestamp']:.1f}s.jpg"
    assert path.read_bytes()[:2] == b"\xff\xd8"
    assert path.stat().st_mode & stat.S_IRGRP
    stored = root / "data" / "media" / positive["evidence_key"]
    assert stored.stat().st_mode & stat.S_IRGRP  # in the media store too, not 0600
    negative = next(r for r in json.loads(run(env, "results", "--format", "json").stdout) if r["verdict"] == "negative")
    none = run(env, "evidence", str(negative["video_id"]), "--out", str(out))
    assert none.returncode == 2 and "no evidence" in none.stderr
    missing = run(env, "evidence", "no-such-job", "--out", str(out))
    assert missing.returncode == 2 and missing.stderr.startswith("error: no job")


def test_target_list_shows_a_damaged_bundle_with_its_error(scanned):
    root, env, _hostile, _scan = scanned
    damaged = root / "models" / "broken"
    damaged.mkdir(exist_ok=True)
    (damaged / "target.json").write_text("{not json")
    incomplete = root / "models" / "incomplete"
    incomplete.mkdir(exist_ok=True)
    (incomplete / "target.json").write_text(json.dumps({"kind": "face", "name": "incomplete"}))
    try:
        proc = run(env, "target", "list", columns=120)
        assert proc.returncode == 0, proc.stderr
        assert_clean(proc)
        assert "astronaut" in proc.stdout and "broken" in proc.stdout and "malformed JSON" in proc.stdout
        assert "incomplete" in proc.stdout and "damaged" in proc.stdout
        rows = {r["name"]: r for r in map(json.loads, run(env, "target", "list", "--json").stdout.splitlines())}
        assert rows["astronaut"]["kind"] == "face" and "error" not in rows["astronaut"]
        assert "malformed JSON" in rows["broken"]["error"] and rows["incomplete"]["error"]
    finally:
        for folder in (damaged, incomplete):
            for f in folder.iterdir():
                f.unlink()
            folder.rmdir()


def test_errors_naming_hostile_paths_are_one_clean_line(scanned):
    root, env, _hostile, _scan = scanned
    proc = run(env, "target", "train", "x", "--images", str(root / "missing [/] \x1b[2J"))
    assert proc.returncode == 2
    assert_clean(proc)
    assert len(proc.stderr.strip().splitlines()) == 1 and "missing [/]" in proc.stderr
    scan = run(env, "scan", str(root / "missing [/] \x1b[2J.mp4"), "--target", "astronaut")
    assert scan.returncode == 1  # a failed row, with its reason
    assert_clean(scan)
    assert "missing[/][2J.mp4" in column_text(scan.stdout, 0)


def test_enqueue_prints_sources_escaped(scanned, redis_url):  # noqa: F811
    _root, env, hostile, _scan = scanned
    proc = run({**env, "TT_BROKER_URL": redis_url}, "enqueue", str(hostile), "--target", "astronaut")
    assert proc.returncode == 0, proc.stderr
    assert_clean(proc)
    (line,) = proc.stdout.splitlines()
    job, source = line.split("\t")
    assert source.endswith("videos [/]/odd [red] name [2J next.mp4")  # ESC dropped, newline made a space


def test_config_at_80_columns_cuts_nothing(tmp_path):
    env = {**os.environ, "TT_DATA_DIR": str(tmp_path / "a-fairly-long-folder-name" / "data")}
    proc = run(env, "config")
    assert proc.returncode == 0, proc.stderr
    assert "…" not in proc.stdout and all(len(line) <= 80 for line in proc.stdout.splitlines())
    assert "watch_poll_interval" in proc.stdout
    wide = run(env, "config", "--wide", columns=200)
    assert "TT_WATCH_POLL_INTERVAL" in wide.stdout and "meaning" in wide.stdout


@pytest.mark.parametrize("command, shown", [
    (["target", "add-face"], "[default: (TT_FACE_TOLERANCE, 0.5)]"),
    (["target", "train"], "[default: (0.4 pooled, 0.5 seed)]"),
    (["scan"], "[env: TT_VGG16_WEIGHTS]"),
])
def test_help_shows_defaults(command, shown):
    proc = run(dict(os.environ), *command, "--help", columns=250)
    assert proc.returncode == 0 and shown in proc.stdout, proc.stdout


JOB_A = "3f2a9c1e-1b2c-4d5e-8f90-123456789abc"
JOB_B = "3f2a9c1e-77aa-4d5e-8f90-cba987654321"  # the same first 8 characters: their short forms are longer
_ID_TOKEN = re.compile(r"(?<![\w-])[0-9a-f]{8}[0-9a-f-]*")  # not a target version (v...)


def test_every_table_at_80_columns_shows_ids_whole_or_as_a_unique_prefix(scanned):
    """Job ids (real uuids, two sharing their first 8 characters) in the status, results, alerts
    and watch tables at 80 columns, next to a long path: each one shown is whole or a unique
    prefix that `status` takes back, on one line; video, alert and watch ids are never folded."""
    from workers.storage.db import forget_engines, session_scope
    from workers.storage.models import AlertRow, Video

    root, env, _hostile, _scan = scanned
    url = f"sqlite:///{(root / 'data' / 'tiktok-tracker.db').resolve()}"
    with session_scope(url) as s:
        first, second = s.query(Video).order_by(Video.id).limit(2).all()
        first.job_id, second.job_id = JOB_A, JOB_B
        if not s.query(AlertRow).count():
            s.add(AlertRow(video_id=first.id, target_name="astronaut", status="sent", attempts=1))
        video_ids = {str(first.id), str(second.id)}
    forget_engines(close=True)
    long_folder = root / ("a-long-folder-name-for-the-newsroom-archive-" * 2)
    long_folder.mkdir(exist_ok=True)
    assert run(env, "watch", "add", str(long_folder), "--target", "astronaut").returncode == 0

    outputs = {
        "status": run(env, "status"),
        "results": run(env, "results"),
        "results --wide": run(env, "results", "--wide"),
        "alerts list": run(env, "alerts", "list"),
        "watch list": run(env, "watch", "list"),
    }
    shown: set[str] = set()
    for name, proc in outputs.items():
        assert proc.returncode == 0, (name, proc.stderr)
        assert_clean(proc)
        lines = proc.stdout.splitlines()
        assert all(len(line) <= 80 for line in lines), (name, proc.stdout)
        for line in lines:
            assert not re.search(r"(?<![^\s│])(\d+|[0-9a-f]{8}[0-9a-f-]*)…", line), (name, line)  # no id cut short
            for token in _ID_TOKEN.findall(line):
                assert sum(job.startswith(token) for job in (JOB_A, JOB_B)) == 1, (name, token, proc.stdout)
                shown.add(token)
        first_cells = {line.split("│")[1].split()[0] for line in lines if line.startswith("│") and line.split("│")[1].strip()}
        if name in ("status", "results"):  # the video ids, whole
            column = 2 if name == "status" else 1
            cells = {line.split("│")[column].split()[0] for line in lines if line.startswith("│") and line.split("│")[column].strip()}
            assert video_ids <= cells, (name, proc.stdout)
        elif name != "results --wide":
            assert first_cells and all(c.isdigit() for c in first_cells), (name, proc.stdout)
    assert any(JOB_A.startswith(t) for t in shown) and any(JOB_B.startswith(t) for t in shown), shown
    from workers.storage.results import find_video

    with session_scope(url) as s:  # what a table shows, `status` and `evidence` take back (their lookup)
        assert all(find_video(s, token).job_id in (JOB_A, JOB_B) for token in shown), shown
    forget_engines(close=True)
    one = run(env, "status", min(shown, key=len), "--json")
    assert one.returncode == 0 and json.loads(one.stdout)["job_id"] in (JOB_A, JOB_B), one.stderr
    ambiguous = run(env, "status", JOB_A[:8])
    assert ambiguous.returncode == 2 and JOB_A in ambiguous.stderr and JOB_B in ambiguous.stderr, ambiguous.stderr
    assert len(ambiguous.stderr.strip().splitlines()) == 1  # one line, however narrow the terminal
    evidence = run(env, "evidence", JOB_A[:13], "--out", str(root / "evidence-by-prefix"))
    assert evidence.returncode in (0, 2) and "no job" not in evidence.stderr, evidence.stderr


@pytest.mark.parametrize("command", [["scan"], ["target", "train"], ["enqueue"]])
def test_help_has_no_flag_types_or_long_floats(command):
    proc = run(dict(os.environ), *command, "--help", columns=200)
    assert proc.returncode == 0, proc.stderr
    assert "<bool>" not in proc.stdout and "0.3333" not in proc.stdout, proc.stdout
    assert "--help" in proc.stdout and "--json" in proc.stdout or command == ["target", "train"]
