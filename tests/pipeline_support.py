"""Real services for the pipeline tests: a Postgres database of their own, a
Redis database number of their own (or a private redis-server), a trained
classifier target, and Celery workers as separate OS processes started with
``tiktok-tracker worker``.

Without Redis or Postgres the tests skip; under ``CI=true`` they fail.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import made_once, need, run_cache_env
from tests.videos import write_image, write_video
from workers.video_ref import canonical_source

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "workers.cli.main"]
PG_ADMIN = os.environ.get("TT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_HOST, REDIS_PORT = "127.0.0.1", int(os.environ.get("TT_TEST_REDIS_PORT", "6379"))
RED, BLUE = (210, 30, 30), (30, 30, 210)
TERMINAL = ("done", "failed")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- Postgres -------------------------------------------------------------------------


@pytest.fixture()
def postgres_url():
    yield from _postgres_database()


@pytest.fixture(scope="module")
def module_postgres_url():
    yield from _postgres_database()


def _postgres_database():
    """A freshly created, uniquely named database; dropped afterwards."""
    import psycopg

    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        need(False, f"Postgres not reachable at {PG_ADMIN} ({str(exc).strip().splitlines()[0]})")
    name = f"tt_test_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
        finally:
            from workers.storage.db import forget_engines

            forget_engines(close=True)
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- Redis ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_url():
    """An empty database number of the local Redis, claimed with a key; flushed afterwards."""
    import redis

    need(port_open(REDIS_PORT, REDIS_HOST), f"Redis not reachable at {REDIS_HOST}:{REDIS_PORT}")
    claim = f"tt-test-claim-{uuid.uuid4().hex}"
    numbers = list(range(1, 16))
    random.shuffle(numbers)
    for n in numbers:
        client = redis.Redis(REDIS_HOST, REDIS_PORT, db=n)
        if client.dbsize() == 0 and client.set("tt-test-claim", claim, nx=True, ex=3600):
            try:
                yield f"redis://{REDIS_HOST}:{REDIS_PORT}/{n}"
            finally:
                client.flushdb()
            return
    pytest.fail("no free Redis database number (1-15) for the test")


@dataclass
class PrivateRedis:
    """A redis-server of our own (append-only, fsync on every write), to kill and restart."""

    workdir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    host: str = "127.0.0.1"  # or a test network's address (tests/netns.py)

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server", "--port", str(self.port), "--bind", self.host,
                "--dir", str(self.workdir), "--appendonly", "yes", "--appendfsync", "always", "--save", "",
                # Off the loopback Redis refuses clients unless told: the address is the test's own network.
                *(["--protected-mode", "no"] if self.host != "127.0.0.1" else []),
            ],
            stdout=open(self.workdir / "redis.log", "ab"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while not port_open(self.port, self.host):
            assert self.proc.poll() is None, (self.workdir / "redis.log").read_text()
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


@pytest.fixture()
def private_redis(tmp_path):
    need(shutil.which("redis-server") is not None, "redis-server binary not installed")
    server = PrivateRedis(tmp_path / "redis")
    server.start()
    yield server
    server.kill()


# --- media and target -------------------------------------------------------------------


@pytest.fixture(scope="session")
def red_target() -> Path:
    """A models folder with target 'red' (red frames vs blue), trained through the
    CLI on a random-weight VGG16: red videos come out positive, blue negative.
    Trained once per run (``made_once``); tests read it, never change it."""
    return made_once("red-target", lambda root: train_colour_target(root, "red")) / "models"


@pytest.fixture(scope="session")
def red160_target() -> Path:
    """A models folder with ``red160``: ``red`` at VGG16 input size 160, trained once per run."""
    return made_once("red160-target", lambda root: train_colour_target(root, "red160", "--input-size", "160")) / "models"


def train_colour_target(root: Path, name: str, *options: str) -> Path:
    """``root/models`` with a target ``name`` trained through the CLI on red vs blue images
    (random-weight VGG16, no validation), with the extra ``target train`` ``options``."""
    images = root / "images"
    for cls, colour in (("red", RED), ("other", BLUE)):
        (images / cls).mkdir(parents=True, exist_ok=True)
        for i in range(8):
            write_image(images / cls / f"{i}.jpg", colour, seed=i)
    env = {**base_env(root / "data", root / "models"), "TT_DATABASE_URL": f"sqlite:///{root / 'train.db'}"}
    proc = subprocess.run(
        [*CLI, "target", "train", name, "--images", str(images), "--positive-class", "red",
         "--epochs", "30", "--folds", "0", "--augment", "0", *options],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return root / "models"


def make_videos(folder: Path, count: int, seconds: float = 3.0, fps: float = 10.0) -> list[Path]:
    """``count`` small mp4s alternating red and blue (160x120)."""
    folder.mkdir(parents=True, exist_ok=True)
    return [
        write_video(folder / f"{'red' if i % 2 == 0 else 'blue'}{i:02d}.mp4", seconds=seconds, fps=fps,
                    color=RED if i % 2 == 0 else BLUE, seed=i)
        for i in range(count)
    ]


# --- workers ------------------------------------------------------------------------------


def base_env(data_dir: Path, models_dir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TT_")}
    env.update(
        TT_DATA_DIR=str(data_dir),
        TT_MODELS_DIR=str(models_dir),
        TT_VGG16_WEIGHTS="random",
        TF_CPP_MIN_LOG_LEVEL="3",
        CUDA_VISIBLE_DEVICES="",
        PYTHONUNBUFFERED="1",
        **run_cache_env(),
    )
    return env


class Cluster:
    """Workers (OS processes) and CLI calls sharing one broker, database and media store."""

    def __init__(self, root: Path, database_url: str, broker_url: str, models_dir: Path, **settings: str) -> None:
        self.root = root
        self.database_url = database_url
        self.env = base_env(root / "data", models_dir)
        self.env.update(TT_DATABASE_URL=database_url, TT_BROKER_URL=broker_url)
        self.env.update({f"TT_{k.upper()}": str(v) for k, v in settings.items()})
        self.workers: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}

    # processes
    def start_worker(self, name: str, queues: str, concurrency: int = 1) -> subprocess.Popen:
        log = self.root / f"worker-{name}.log"
        proc = subprocess.Popen(
            [*CLI, "worker", "--queues", queues, "--concurrency", str(concurrency), "--name", f"{name}@%h"],  # two of one queue: two names
            env=self.env, cwd=ROOT, stdout=open(log, "ab"), stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the pool children die with it
        )
        self.workers[name], self.logs[name] = proc, log
        return proc

    def start_beat(self) -> subprocess.Popen:
        """``tiktok-tracker beat`` (one per deployment), its schedule file under the test's data dir."""
        return self.start_process("beat", "beat", "--loglevel", "INFO")

    def start_metrics(self, port: int) -> subprocess.Popen:
        """``tiktok-tracker metrics`` on 127.0.0.1:``port``."""
        return self.start_process("metrics", "metrics", "--port", str(port))

    def start_process(self, name: str, *args: str) -> subprocess.Popen:
        """A long-running command of the CLI, in its own process group, logged to NAME.log."""
        log = self.root / f"{name}.log"
        proc = subprocess.Popen(
            [*CLI, *args], env=self.env, cwd=ROOT, stdout=open(log, "ab"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.workers[name], self.logs[name] = proc, log
        return proc

    def kill_worker(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.workers[name]
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        proc.wait(30)

    def stop(self) -> None:
        """Warm shutdown (SIGTERM to the main process, as ``docker stop`` does); SIGKILL after 15 s."""
        for proc in self.workers.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name, proc in self.workers.items():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                pass
            self.kill_worker(name)  # and whatever is left of its process group

    def log_text(self) -> str:
        return "\n".join(f"===== {name}\n{path.read_text(errors='replace')[-6000:]}" for name, path in self.logs.items())

    def cli(self, *args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([*CLI, *args], env={**self.env, **(env or {})}, cwd=ROOT, capture_output=True, text=True, timeout=timeout)

    def enqueue(self, *args: str) -> list[str]:
        proc = self.cli("enqueue", *args)
        assert proc.returncode == 0, proc.stderr
        return [line.split("\t")[0] for line in proc.stdout.splitlines() if line.strip()]

    # database
    def session(self):
        from workers.storage.db import session_scope

        return session_scope(self.database_url)

    def statuses(self) -> dict[str, str]:
        from sqlalchemy import select

        from workers.storage.models import Video

        with self.session() as s:
            return dict(s.execute(select(Video.job_id, Video.status)).all())

    def wait(self, job_ids, states=TERMINAL, timeout: float = 180) -> dict[str, str]:
        """Poll until every job is in one of ``states``; fail with the worker logs if not."""
        deadline = time.monotonic() + timeout
        while True:
            current = self.statuses()
            if all(current.get(j) in states for j in job_ids):
                return current
            for name, proc in self.workers.items():
                if proc.poll() is not None and proc.returncode not in (0, -9, -15):
                    pytest.fail(f"worker {name} exited {proc.returncode}\n{self.log_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {states}: {current}\n{self.log_text()}")
            time.sleep(0.25)


def overlapping_workers(timings) -> set[tuple[str, str]]:
    """Pairs of different workers whose stage intervals overlap in time."""
    spans = sorted((t.started_at, t.finished_at, t.worker) for t in timings)
    pairs = set()
    for i, (start_a, end_a, worker_a) in enumerate(spans):
        for start_b, _end_b, worker_b in spans[i + 1 :]:
            if start_b >= end_a:
                break
            if worker_a != worker_b:
                pairs.add(tuple(sorted((worker_a, worker_b))))
    return pairs


# Float32 scores of the same frame through the same model, in passes of other sizes or neighbours:
# equal on most CPUs, but oneDNN may pick another kernel for another batch size, which changes the
# last bits (3e-8 on a 2-core AVX2-only EPYC, 2026-12-03). Verdicts and frame facts stay exact.
SCORE_TOLERANCE = 1e-5


def same_scores(a, b, tolerance: float = SCORE_TOLERANCE) -> bool:
    """Two lists of per-frame tuples whose last item is a score: the same frames, scores within ``tolerance``."""
    return len(a) == len(b) and all(
        x[:-1] == y[:-1] and abs(x[-1] - y[-1]) <= tolerance for x, y in zip(a, b, strict=True)
    )


def assert_scan_matches_pipeline(cluster: "Cluster", settings, target: str, jobs: dict[Path, str]) -> dict:
    """Scan ``jobs``' files in one process (``Scanner``, ``settings``' own database) and
    assert each gets exactly the per-frame scores and verdict its job got from the
    workers; returns the scan's rows by path."""
    from sqlalchemy import select

    from workers.scan import Scanner
    from workers.storage.db import session_scope
    from workers.storage.models import Detection, Video

    def facts(detection):
        d = detection
        return ([(f.frame_index, f.timestamp, f.score) for f in d.frame_scores],
                (d.verdict, d.frames, d.scored_frames, d.positive_frames, d.positive_timestamps))

    scanned = dict(Scanner.for_names(settings, [target]).scan_files(list(jobs)))  # decoding overlaps scoring
    for path, job in jobs.items():
        (row,) = scanned[path]
        with session_scope(settings.resolved_database_url) as s:
            local = facts(s.scalars(select(Detection).join(Video).where(Video.source == canonical_source(str(path)))).one())
        deadline = time.monotonic() + 120  # a positive's timeline is completed after its verdict (a follow-up)
        while True:
            with cluster.session() as s:
                remote_detection = s.scalars(select(Detection).join(Video).where(Video.job_id == job)).one()
                remote = facts(remote_detection)
                remote_verdict = remote_detection.verdict
            if (same_scores(remote[0], local[0]) and remote[1] == local[1]) or time.monotonic() > deadline:
                break
            time.sleep(0.25)
        assert same_scores(remote[0], local[0]), (path, remote[0], local[0])  # the same float32 features (SCORE_TOLERANCE)
        assert remote[1] == local[1], path
        assert row.verdict == remote_verdict
    return scanned
