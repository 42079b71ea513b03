"""Retention over 90 simulated days (the clock is driven, nothing sleeps): ``bench/retention.py``'s
short form on Postgres with the media store on a real S3 server (SeaweedFS), then ``tiktok-tracker
prune --dry-run`` and ``prune`` on what it left. The long form is the same command with more
videos a day (bench/README.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.pipeline_support import CLI, module_postgres_url  # noqa: F401  (fixture)
from tests.s3_support import SeaweedServer

pytestmark = pytest.mark.services

DAYS, PER_DAY, FRAMES = 90, 5, 6
# Shorter than the defaults, so that 90 days show every kind go and the size level off.
RETAIN = {"frame-data-days": 10, "negative-days": 30, "failed-days": 10, "positive-days": 45}


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    server = SeaweedServer(tmp_path_factory.mktemp("seaweed"))
    server.start()
    server.create_bucket("tt-media")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def simulated(module_postgres_url, s3, tmp_path_factory):  # noqa: F811
    work = tmp_path_factory.mktemp("retention")
    out = work / "out.json"
    env = {**os.environ, **s3.env("tt-media", "media")}
    proc = subprocess.run(
        [sys.executable, "bench/retention.py", "--days", str(DAYS), "--per-day", str(PER_DAY), "--frames", str(FRAMES),
         "--database", module_postgres_url, "--media", "s3://tt-media/media", "--work", str(work), "--json", str(out),
         *[a for k, v in RETAIN.items() for a in (f"--{k}", str(v))]],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    print(proc.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    return json.loads(out.read_text()), env


def test_the_database_stops_growing_and_each_kind_goes_at_its_time(simulated, s3):
    found, _ = simulated
    sizes = {m["day"]: m["bytes"] for m in found["months"]}
    print("database bytes per simulated month:", sizes)
    assert sorted(sizes) == [30, 60, 90]
    assert sizes[90] <= sizes[60] * 1.05, sizes  # steady arrivals, steady size (Postgres reuses what VACUUM freed)
    probes = {k: {int(day): v for day, v in found["probes"][k].items()} for k in found["probes"] if k != "videos"}
    # The first day's videos finished at noon: "age" is the day whose end prune ran at.
    assert probes["negative_frame_scores"][10] == FRAMES and probes["negative_frame_scores"][11] == 0  # > 10 days: frame data gone
    assert probes["negative_row"][30] and not probes["negative_row"][31]  # > 30 days: the video itself
    assert probes["negative_matched"][10] and not probes["negative_matched"][11]  # out of the repost index with its frame data
    assert probes["reviewed_frame_scores"][45] == FRAMES and probes["reviewed_frame_scores"][46] == 0  # reviewed: kept 45 days
    assert probes["positive_matched"][45] and not probes["positive_matched"][46]
    # The positive's evidence (best frame and two frames) stays in the bucket until its 45 days, not a day less.
    assert all(probes["positive_objects"][day] == 3 for day in range(1, 46)) and probes["positive_objects"][46] == 0
    pruned = found["pruned"]
    assert pruned["failed videos"]["videos"] == DAYS - 10  # one a day, kept 10 days
    assert pruned["positive or reviewed videos"]["objects"] > 0


def test_objects_are_gone_from_the_real_s3_server(simulated, s3):
    """What remains in the bucket is the evidence of the positives younger than 45 days: three
    objects each (listed from the server, not through the project's store)."""
    found, _ = simulated
    paginator = s3.client().get_paginator("list_objects_v2")
    keys = [o["Key"] for page in paginator.paginate(Bucket="tt-media", Prefix="media/evidence/") for o in page.get("Contents", [])]
    positives_a_day = len(range(0, PER_DAY, 10))
    assert len(keys) == 3 * positives_a_day * 45, len(keys)
    assert not any(found["probes"]["videos"]["positive"] == k for k in keys)


def test_prune_dry_run_prints_rows_and_bytes_per_kind_then_prune_removes_that(simulated, module_postgres_url):  # noqa: F811
    _, env = simulated
    env = {**env, "TT_DATABASE_URL": module_postgres_url, "TT_RETAIN_FRAME_DATA_DAYS": "5", "TT_RETAIN_NEGATIVE_DAYS": "30",
           "TT_RETAIN_FAILED_DAYS": "10", "TT_RETAIN_POSITIVE_DAYS": "45", "COLUMNS": "200"}
    dry = subprocess.run([*CLI, "prune", "--dry-run", "--json"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert dry.returncode == 0, dry.stderr
    would = {k["kind"]: k for k in json.loads(dry.stdout)["kinds"]}
    frame = would["frame data"]
    assert frame["videos"] > 0 and frame["rows"]["frame_scores"] == frame["videos"] * FRAMES and frame["row_bytes"] > 0
    table = subprocess.run([*CLI, "prune", "--dry-run"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert table.returncode == 0 and "would remove" in table.stdout and "frame data" in table.stdout and " kB" in table.stdout
    done = subprocess.run([*CLI, "prune", "--json"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    removed = {k["kind"]: k for k in json.loads(done.stdout)["kinds"]}
    assert removed["frame data"]["videos"] == frame["videos"] and removed["frame data"]["rows"] == frame["rows"]
    again = subprocess.run([*CLI, "prune", "--dry-run", "--json"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert json.loads(again.stdout)["kinds"][0]["videos"] == 0  # nothing left to do
