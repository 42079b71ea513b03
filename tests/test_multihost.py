"""Workers on hosts that share nothing but the network.

Four "hosts" are Linux network namespaces (``tests/netns.py``) on a bridge of the
test's own; each has its own ``TT_DATA_DIR``, ``TT_MODELS_DIR``, ``TMPDIR`` and
``HOME`` (distinct temp folders, empty at the start). They reach only what the test
binds to the bridge address: a redis-server (the broker), the machine's Postgres
through a TCP relay (the results), moto's S3 server (the media store) and an HTTP
server with the videos. So each host gets exactly what docs/pipeline.md ("Workers
on other machines") says a new host needs: the broker URL, the database URL and the
media URL with its S3 credentials.

- io workers on host A, cpu on B, score on C: ten videos, enqueued from A (which has
  no target of its own: the target is published from the test's own models folder with
  ``target push``), end ``done`` with the per-frame scores and verdicts of ``scan``;
- a new version published while C runs is used for the next video, no restart;
- C's score worker killed with SIGKILL mid-video, a new one started on host D: every
  video ends done exactly once;
- the control: the same hosts with the folder store (each its own ``data/media``, the
  target copied into each ``models/`` by hand) fail, at the frames stage on B, because
  the video A downloaded is not on B's disk. Were the workers able to read each other's
  folders in the S3 run, this run would not fail.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.conftest import SEED
from tests.netns import Host, Network, TcpForwarder
from tests.pipeline_support import (
    assert_scan_matches_pipeline,
    BLUE,
    CLI,
    PG_ADMIN,
    ROOT,
    Cluster,
    PrivateRedis,
    base_env,
    make_videos,
    postgres_url,  # noqa: F401  (fixture)
    red_target,  # noqa: F401  (fixture)
)
from tests.s3_support import MotoServer
from tests.videos import write_video
from workers.storage.models import Detection, StageTiming, Video

pytestmark = pytest.mark.services

BUCKET = "tt-multihost"
SEED_VIDEOS = ["Trump.mp4", "Biden.mp4"]


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def network():
    net = Network()
    try:
        hosts = {label: net.add_host(label) for label in "abcd"}
        yield net, hosts
    finally:
        net.close()


@pytest.fixture(scope="module")
def services(network, tmp_path_factory):
    """Broker, database relay, S3 server and the videos' HTTP server, on the bridge address only."""
    net, _hosts = network
    root = tmp_path_factory.mktemp("multihost")
    redis = PrivateRedis(root / "redis", host=net.gateway)
    redis.start()
    pg_host, pg_port = PG_ADMIN.split("@", 1)[1].split("/", 1)[0].split(":")
    relay = TcpForwarder(net.gateway, (pg_host, int(pg_port)))
    moto = MotoServer(root / "s3", host=net.gateway)
    moto.start()
    moto.create_bucket(BUCKET)
    videos = root / "served"
    videos.mkdir()
    web = ThreadingHTTPServer((net.gateway, 0), partial(_Quiet, directory=str(videos)))
    threading.Thread(target=web.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield {
            "root": root, "redis": redis, "moto": moto, "videos": videos,
            "broker_url": redis.url,
            "database_relay": f"{net.gateway}:{relay.port}",
            "video_url": lambda name: f"http://{net.gateway}:{web.server_address[1]}/{name}",
            "gateway": net.gateway,
        }
    finally:
        web.shutdown()
        moto.kill()
        relay.close()
        redis.kill()


class Deployment:
    """Workers on namespaces, each host with only the three URLs (and its own folders)."""

    def __init__(self, root: Path, services: dict, database_url: str, media: dict[str, str], admin_models: Path) -> None:
        self.root, self.services, self.media = root, services, media
        # The hosts reach the test's database through the relay on the bridge address.
        name = database_url.rsplit("/", 1)[1]
        self.remote_db = f"postgresql://postgres@{services['database_relay']}/{name}"
        # The test's own view: the database directly, the publisher's models folder.
        self.cluster = Cluster(root, database_url, services["broker_url"], admin_models)
        self.cluster.env.update(media)
        self.homes: dict[str, Path] = {}

    def host_env(self, label: str) -> dict:
        home = self.root / f"host-{label}"
        for sub in ("data", "models", "tmp"):
            (home / sub).mkdir(parents=True, exist_ok=True)
        self.homes[label] = home
        env = base_env(home / "data", home / "models")
        # Visibility timeout: above the slowest task here (a score worker's first task waits for its
        # models, 20+ s on a loaded machine), so that only the killed worker's task is handed on.
        env.update(
            TT_BROKER_URL=self.services["broker_url"], TT_DATABASE_URL=self.remote_db, **self.media,
            TT_ALLOW_HOSTS=self.services["gateway"], TT_BROKER_VISIBILITY_TIMEOUT="45",
            TMPDIR=str(home / "tmp"), HOME=str(home),
        )
        return env

    def start_worker(self, host: Host, label: str, queues: str, concurrency: int = 1) -> subprocess.Popen:
        log = self.root / f"worker-{label}-{queues}.log"
        proc = host.popen(
            [*CLI, "worker", "--queues", queues, "--concurrency", str(concurrency), "--name", f"{queues}@host-{label}"],  # one host name here
            env=self.host_env(label), cwd=ROOT, stdout=open(log, "ab"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.cluster.workers[label], self.cluster.logs[label] = proc, log
        return proc

    def enqueue(self, host: Host, label: str, urls: list[str], target: str = "red") -> list[str]:
        proc = host.run([*CLI, "enqueue", *urls, "--target", target], env=self.host_env(label), cwd=ROOT,
                        capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return [line.split("\t")[0] for line in proc.stdout.splitlines() if line.strip()]

    def stop(self) -> None:
        self.cluster.stop()

    def report(self) -> str:
        """Each video's source, status and failure reason, then the worker logs (for assertion messages)."""
        with self.cluster.session() as s:
            rows = s.execute(select(Video.source, Video.status, Video.error)).all()
        return "\n".join(f"{source}: {status} {error or ''}" for source, status, error in rows) + "\n" + self.cluster.log_text()


def _serve(services: dict, paths: list[Path], run: str) -> dict[str, Path]:
    """URL -> local file, for each video put on the test's HTTP server (under ``run``: one URL per test)."""
    out = {}
    for path in paths:
        (services["videos"] / run).mkdir(exist_ok=True)
        shutil.copy(path, services["videos"] / run / path.name)
        out[services["video_url"](f"{run}/{path.name}")] = path
    return out


def _host_of(worker: str) -> str:
    """The host label of a ``stage_timings.worker`` (``score@host-c/1240``: host c; its node names are ``QUEUES@host-LABEL``)."""
    return worker.split("@", 1)[1].split("/", 1)[0].removeprefix("host-")


def test_folder_store_fails_when_hosts_share_no_disk(tmp_path, network, services, postgres_url, red_target):  # noqa: F811
    """The control: without a shared store, the frames stage on B cannot read what A downloaded."""
    _net, hosts = network
    deployment = Deployment(tmp_path, services, postgres_url, {"TT_MEDIA_URL": ""}, red_target)
    try:
        for label in "abc":  # the old way: models/ copied to every host by hand
            shutil.copytree(red_target, deployment.host_env(label)["TT_MODELS_DIR"], dirs_exist_ok=True)
        deployment.start_worker(hosts["a"], "a", "io")
        deployment.start_worker(hosts["b"], "b", "cpu")
        deployment.start_worker(hosts["c"], "c", "score")
        urls = _serve(services, make_videos(tmp_path / "videos", 2), "control")
        jobs = deployment.enqueue(hosts["a"], "a", list(urls))
        final = deployment.cluster.wait(jobs, timeout=240)
        assert {final[j] for j in jobs} == {"failed"}, deployment.report()
        b_media = deployment.homes["b"] / "data" / "media"
        with deployment.cluster.session() as s:
            errors = s.scalars(select(Video.error).where(Video.job_id.in_(jobs))).all()
        assert all("not in the media store" in e and str(b_media) in e for e in errors), errors
        assert all((deployment.homes["a"] / "data" / "media" / "videos" / j).is_dir() for j in jobs)  # A has them
    finally:
        deployment.stop()


def test_workers_on_three_hosts_pull_media_and_targets_from_s3(tmp_path, network, services, postgres_url, red_target):  # noqa: F811
    _net, hosts = network
    moto: MotoServer = services["moto"]
    media = moto.env(BUCKET, prefix=f"run-{tmp_path.name}")
    deployment = Deployment(tmp_path, services, postgres_url, media, red_target)
    cluster = deployment.cluster
    try:
        pushed = cluster.cli("target", "push", "red")
        assert pushed.returncode == 0, pushed.stderr
        deployment.start_worker(hosts["a"], "a", "io", concurrency=2)
        deployment.start_worker(hosts["b"], "b", "cpu")
        score_c = deployment.start_worker(hosts["c"], "c", "score")

        seeds = [SEED / name for name in SEED_VIDEOS if (SEED / name).is_file()]
        local = [*make_videos(tmp_path / "videos", 10 - len(seeds)), *seeds]
        urls = _serve(services, local, "s3")
        jobs = deployment.enqueue(hosts["a"], "a", list(urls))  # A has no target: enqueue reads the published one
        assert len(jobs) == 10
        job_url = dict(zip(jobs, urls))
        final = cluster.wait(jobs, timeout=600)
        assert {final[j] for j in jobs} == {"done"}, deployment.report()

        # Each stage ran on its host.
        with cluster.session() as s:
            rows = s.execute(select(StageTiming.stage, StageTiming.worker).join(Video).where(Video.job_id.in_(jobs))).all()
        ran_on = {(stage, _host_of(worker)) for stage, worker in rows}
        expected = {"download": "a", "alert": "a", "frames": "b", "verdict": "b", "score": "c"}
        assert ran_on == set(expected.items())

        # Same per-frame scores and verdicts as the in-process scan of the same files.
        _assert_same_as_scan(cluster, tmp_path, red_target, {j: urls[job_url[j]] for j in jobs})

        # Nothing on any host's disk but its own caches: no media folder, the target only where it was scored.
        version = _published_version(moto, media)
        for label in "abc":
            home = deployment.homes[label]
            assert not (home / "data" / "media").exists()
            assert list((home / "models").iterdir()) == []
            assert (home / "data" / "cache" / "targets").is_dir() == (label == "c")
        assert (deployment.homes["c"] / "data" / "cache" / "targets" / version / "red" / "target.json").is_file()
        with cluster.session() as s:
            assert set(s.scalars(select(Detection.target_version)).all()) == {version}

        # A new version, published while C runs, scores the next video (no restart).
        newer = _publish_new_version(cluster, tmp_path, red_target)
        assert newer != version
        (next_job,) = deployment.enqueue(hosts["a"], "a", list(_serve(services, [write_video(tmp_path / "next.mp4", seconds=3, seed=42)], "s3")))
        assert cluster.wait([next_job], timeout=240)[next_job] == "done", deployment.report()
        assert score_c.poll() is None
        with cluster.session() as s:
            det = s.scalars(select(Detection).join(Video).where(Video.job_id == next_job)).one()
            assert det.target_version == newer
            (timing,) = [t for t in det.video.timings if t.stage == "score"]
            assert _host_of(timing.worker) == "c"

        # C's score worker killed mid-video; a new one on D finishes it, once.
        long_videos = [write_video(tmp_path / f"long{i}.mp4", seconds=90, color=BLUE, seed=70 + i) for i in range(2)]
        late = deployment.enqueue(hosts["a"], "a", list(_serve(services, long_videos, "s3")))
        deadline = time.monotonic() + 240
        while "scoring" not in (states := {j: cluster.statuses().get(j) for j in late}).values():
            assert time.monotonic() < deadline, cluster.log_text()
            time.sleep(0.05)
        (held,) = [j for j, state in states.items() if state == "scoring"]
        cluster.kill_worker("c")
        deployment.start_worker(hosts["d"], "d", "score")
        everything = [*jobs, next_job, *late]
        final = cluster.wait(everything, timeout=400)
        assert {final[j] for j in everything} == {"done"}, deployment.report()
        with cluster.session() as s:
            per_video = dict(s.execute(select(Detection.video_id, func.count()).group_by(Detection.video_id)).all())
            assert len(per_video) == len(everything) and set(per_video.values()) == {1}
            for job in everything:
                video = s.scalars(select(Video).where(Video.job_id == job)).one()
                stages = [t.stage for t in video.timings]
                assert sorted(stages) == sorted(set(stages)), (job, stages)
            video = s.scalars(select(Video).where(Video.job_id == held)).one()
            (timing,) = [t for t in video.timings if t.stage == "score"]
            assert _host_of(timing.worker) == "d"
        assert (deployment.homes["d"] / "data" / "cache" / "targets" / newer / "red" / "target.json").is_file()
    finally:
        deployment.stop()


def _published_version(moto: MotoServer, media: dict) -> str:
    import json

    prefix = media["TT_MEDIA_URL"].split("/", 3)[3]
    body = moto.client().get_object(Bucket=BUCKET, Key=f"{prefix}/targets/red/current.json")["Body"].read()
    return json.loads(body)["version"]


def _publish_new_version(cluster: Cluster, tmp_path: Path, red_target: Path) -> str:  # noqa: F811
    """Save 'red' again with another threshold (a new version) from another models folder, and push it."""
    models = tmp_path / "models-v2"
    shutil.copytree(red_target, models)
    proc = subprocess.run(
        [*CLI[:1], "-c", (
            "import sys; from pathlib import Path; from workers.targets.bundle import load_target, save_target; "
            "t = load_target(Path(sys.argv[1]), 'red'); t.threshold = 0.45; save_target(t, Path(sys.argv[1])); print(t.version)"
        ), str(models)],
        env={**cluster.env, "TT_MODELS_DIR": str(models)}, cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    pushed = cluster.cli("target", "push", "red", env={"TT_MODELS_DIR": str(models)})
    assert pushed.returncode == 0, pushed.stderr
    return proc.stdout.strip().splitlines()[-1]


def _assert_same_as_scan(cluster: Cluster, tmp_path: Path, red_target: Path, files: dict[str, Path]) -> None:  # noqa: F811
    from workers.settings import Settings

    settings = Settings(
        _env_file=None, data_dir=tmp_path / "scan", models_dir=red_target, vgg16_weights="random",
        database_url=f"sqlite:///{tmp_path / 'scan.db'}",
    )
    assert_scan_matches_pipeline(cluster, settings, "red", {path: job for job, path in files.items()})
