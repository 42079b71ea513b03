"""Benchmarks: the product against the tutorial's flow, measured in one run.

    python bench/run.py                 # or: make bench
    python bench/run.py --videos 10 --workers 1 --skip-reference

Prints, for the same videos on the same machine in the same run:
  reference  the tutorial's per-video flow (bench/reference_tutorial.py), one process per video
  scan       `tiktok-tracker scan` in one process (early verdict on, the default)
  scan-all   the same with --all-frames (verdicts must equal scan's)
  scan-f32   --all-frames in float32 (only when --precision is not float32): the
             verdicts every other run must give
  pipeline   Celery workers over the local Redis + Postgres, K score workers
  ceiling    bare VGG16 forward pass, frames/s at the batch size in use
and the ratios: videos/min against the reference, pipeline frames/s against
the ceiling (efficiency). Needs ../shared (seed videos and VGG16 weights) for
real numbers; otherwise falls back to generated videos and random weights.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TT_SHARED_DIR", ROOT.parent / "shared"))
SEED = SHARED / "data" / "seed"
WEIGHTS = SHARED / "weights" / "vgg16_imagenet_notop.weights.h5"
CLI = [sys.executable, "-m", "workers.cli.main"]


@dataclass
class Measure:
    name: str
    videos: int
    seconds: float
    frames: int  # sampled frames
    scored: int  # frames that went through VGG16 (not those skipped by the early verdict or reusing a near-duplicate's score)
    peak_rss_mb: float
    note: str = ""
    stats: dict = field(default_factory=dict)  # pipeline runs: CPU and busy seconds, per-detection rows

    @property
    def videos_per_min(self) -> float:
        return 60 * self.videos / self.seconds

    @property
    def frames_per_s(self) -> float:
        return self.scored / self.seconds


def run_measured(cmd: list[str], env: dict, cwd: Path = ROOT) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MB) of that process alone, and its stdout."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)  # reaped here, so its rusage is its own
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode:
            raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err.read()[-3000:]}")
        return seconds, usage.ru_maxrss / 1024, out.read()


def make_videos(folder: Path, count: int) -> list[Path]:
    """Distinct files made from the seed videos: re-encodes, crops, mirrors, rescales."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    sources = [SEED / "Trump.mp4", SEED / "Biden.mp4"]
    variants = ["reencode", "crop", "mirror", "scale", "crop-mirror"]
    out = []
    for i in range(count):
        src, variant = sources[i % 2], variants[(i // 2) % len(variants)]
        dst = folder / f"{src.stem.lower()}-{variant}-{i:02d}.mp4"
        out.append(dst)
        if dst.exists():
            continue
        cap = cv2.VideoCapture(str(src))
        fps = cap.get(cv2.CAP_PROP_FPS)
        writer = None
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            h, w = frame.shape[:2]
            if "crop" in variant:
                frame = frame[h // 20 : h - h // 20, w // 20 : w - w // 20]
            if "mirror" in variant:
                frame = frame[:, ::-1]
            if variant == "scale":
                frame = cv2.resize(frame, (w * 3 // 4 // 2 * 2, h * 3 // 4 // 2 * 2))
            if writer is None:
                writer = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*"mp4v"), fps, (frame.shape[1], frame.shape[0]))
            writer.write(frame)
        writer.release()
        cap.release()
    return out


def cpu_summary() -> str:
    """The CPU model and the vector/matrix extensions that decide VGG16's speed."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "unknown")
    flags = set(next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), []))
    wanted = ["avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8"]
    return f"{model}, {os.cpu_count()} cores, " + (" ".join(f for f in wanted if f in flags) or "no AVX2")


def env_for(work: Path, real: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TT_")}
    env.update(
        TT_DATA_DIR=str(work / "data"),
        TT_MODELS_DIR=str(work / "models"),
        TF_CPP_MIN_LOG_LEVEL="3",
        PYTHONPATH=str(ROOT),
        # The bench's variants are reposts of two videos: measure scoring them, not skipping them.
        TT_REPOST_MATCHING="false",
    )
    if real:
        env.update(TT_VGG16_WEIGHTS=str(WEIGHTS), TT_VGG16_PREPROCESSING="torch")
    else:
        env.update(TT_VGG16_WEIGHTS="random")
    return env


def train_target(env: dict) -> None:
    bundle = Path(env["TT_MODELS_DIR"]) / "trump"
    if (bundle / "target.json").is_file() and (bundle / "head.onnx").is_file():  # a bundle as training writes it now
        return
    print("training target 'trump' on the seed CSV (features are cached for later runs) ...", flush=True)
    subprocess.run(
        [*CLI, "target", "train", "trump", "--labels", str(SEED / "mapping_trump.csv"), "--images", str(SEED / "images"), "--folds", "0"],
        env=env, check=True, capture_output=True, text=True,
    )


def tutorial_head(work: Path) -> Path:
    """An (untrained) head of the tutorial's architecture: same cost as the trained one."""
    path = work / "tutorial_head.keras"
    if not path.exists():
        code = (
            "import numpy as np; from workers.training.heads import build_member; "
            f"build_member('seed', 2, np.ones((1,7,7,512), 'float32')).save({str(path)!r})"
        )
        subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"})
    return path


def bench_reference(videos: list[Path], env: dict, head: Path) -> Measure:
    total, peak, frames = 0.0, 0.0, 0
    for v in videos:
        seconds, rss, out = run_measured([sys.executable, str(ROOT / "bench" / "reference_tutorial.py"), str(v), str(head)], env)
        total += seconds
        peak = max(peak, rss)
        frames += json.loads(out.strip().splitlines()[-1])["frames"]
        print(f"  reference {v.name}: {seconds:.1f} s", flush=True)
    return Measure("reference", len(videos), total, frames, frames, peak, "one process per video")


def bench_scan(videos: list[Path], env: dict, all_frames: bool, name: str = "") -> tuple[Measure, dict]:
    db = Path(env["TT_DATA_DIR"]) / f"scan-{uuid.uuid4().hex[:8]}.db"
    args = [*CLI, "scan", *map(str, videos), "-t", "trump", "--json", "--force"] + (["--all-frames"] if all_frames else [])
    seconds, rss, out = run_measured(args, {**env, "TT_DATABASE_URL": f"sqlite:///{db}"})
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    verdicts = {Path(r["video"]).name: r["verdict"] for r in rows}
    name = name or ("scan-all" if all_frames else "scan")
    m = Measure(name, len(rows), seconds, sum(r["frames"] for r in rows), sum(r["scored_frames"] - r["reused_frames"] for r in rows), rss,
                "one process, models loaded once" + ("" if all_frames else ", early verdict, near-duplicates reuse scores"))
    return m, verdicts


def bench_ceiling(env: dict, batch: int) -> Measure:
    code = f"""
import time, numpy as np
from workers.detect.registry import make_extractor
from workers.settings import get_settings
b = make_extractor("vgg16", get_settings())
x = np.random.rand({batch}, 224, 224, 3).astype("float32") * 255
b.features(x); b.features(x)
n, t = 0, time.perf_counter()
while time.perf_counter() - t < 20:
    b.features(x); n += {batch}
print(n, time.perf_counter() - t)
"""
    _, rss, out = run_measured([sys.executable, "-c", code], env)
    n, seconds = out.split()
    return Measure("ceiling", 0, float(seconds), int(n), int(n), rss, f"bare VGG16, batch {batch}")


def _process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (a Celery worker and its pool)."""
    pids, out = [pid], []
    while pids:
        p = pids.pop()
        try:
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        out.append(p)
        pids.extend(int(c) for c in children)
    return out


def _process_tree_peak_mb(pid: int) -> float:
    """Largest VmHWM among ``pid`` and its descendants."""
    peak = 0.0
    for p in _process_tree(pid):
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                peak = max(peak, int(line.split()[1]) / 1024)
    return peak


def _process_tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds used so far by ``pid`` and its descendants."""
    total = 0
    for p in _process_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
    return total / os.sysconf("SC_CLK_TCK")


def bench_pipeline(
    videos: list[Path], env: dict, score_workers: int, cpu_processes: int = 1, targets: Sequence[str] = ("trump",)
) -> tuple[Measure, dict, dict]:
    """The pipeline run; ``Measure.stats`` holds CPU seconds per worker, busy seconds per stage
    and one row (video, target, verdict, frames, frames through the models) per detection."""
    import psycopg
    import redis

    admin = os.environ.get("TT_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"tt_bench_{uuid.uuid4().hex[:8]}"
    conn = psycopg.connect(admin, autocommit=True)
    conn.execute(f'CREATE DATABASE "{name}"')
    db_url = admin.rsplit("/", 1)[0] + f"/{name}"
    broker_db = int(os.environ.get("TT_BENCH_REDIS_DB", "14"))
    broker = f"redis://127.0.0.1:6379/{broker_db}"
    redis.Redis.from_url(broker).flushdb()
    penv = {**env, "TT_DATABASE_URL": db_url, "TT_BROKER_URL": broker}
    logs = Path(env["TT_DATA_DIR"]) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    procs = {}
    try:
        for wname, queues, conc in [("io", "io", 2), ("cpu", "cpu", cpu_processes)] + [(f"score{i}", "score", 1) for i in range(score_workers)]:
            procs[wname] = subprocess.Popen([*CLI, "worker", "--queues", queues, "--concurrency", str(conc)], env=penv, cwd=ROOT,
                                            stdout=open(logs / f"{wname}.log", "w"), stderr=subprocess.STDOUT, start_new_session=True)
        # Let the workers load their models before the clock starts (they are long-running services).
        _wait_ready(logs, list(procs), timeout=120)
        cpu_before = {w: _process_tree_cpu_s(p.pid) for w, p in procs.items()}
        start = time.perf_counter()
        proc = subprocess.run([*CLI, "enqueue", *map(str, videos), *(a for t in targets for a in ("-t", t)), "--json"], env=penv, capture_output=True, text=True, check=True)
        jobs = [json.loads(line)["job_id"] for line in proc.stdout.splitlines() if line.startswith("{")]
        from sqlalchemy import create_engine, text

        engine = create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))
        deadline = time.monotonic() + 1800
        while True:
            with engine.connect() as c:
                states = dict(c.execute(text("select job_id, status from videos")).all())
            if all(states.get(j) in ("done", "failed") for j in jobs):
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"pipeline timed out: {states}")
            time.sleep(0.2)
        seconds = time.perf_counter() - start
        cpu = {w: round(_process_tree_cpu_s(p.pid) - cpu_before[w], 1) for w, p in procs.items()}
        peaks = {w: round(_process_tree_peak_mb(p.pid)) for w, p in procs.items()}
        with engine.connect() as c:
            rows = c.execute(text(
                "select v.source, d.verdict, d.frames, d.scored_frames - d.reused_frames, d.target_name "
                "from videos v join detections d on d.video_id = v.id"
            )).all()
            timeline = c.execute(text(
                "select v.source, t.stage, t.worker, t.started_at, t.finished_at from stage_timings t join videos v on v.id = t.video_id order by t.started_at"
            )).all()
            busy = dict(c.execute(text(
                "select stage, sum(extract(epoch from finished_at - started_at)) from stage_timings group by stage"
            )).all())
        engine.dispose()
    finally:
        for p in procs.values():
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in procs.values():
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()
    verdicts = {Path(r[0]).name: r[1] for r in rows if r[4] == targets[0]}
    t0 = timeline[0][3] if timeline else None
    (logs / f"timeline-x{score_workers}.tsv").write_text("".join(
        f"{Path(src).name}\t{stage}\t{worker}\t{(a - t0).total_seconds():.2f}\t{(b - t0).total_seconds():.2f}\n"
        for src, stage, worker, a, b in timeline))
    one = [r for r in rows if r[4] == targets[0]]  # one detection per video (the first target's)
    m = Measure(f"pipeline x{score_workers}", len(one), seconds, sum(r[2] for r in one), sum(r[3] for r in one),
                max(peaks.values()), f"io + cpu ({cpu_processes} processes) + {score_workers} score worker(s); peak MB per worker {peaks}; "
                "busy seconds per stage " + ", ".join(f"{k} {float(v):.1f}" for k, v in sorted(busy.items()))
                + f"; CPU seconds per worker {cpu}",
                stats={"cpu": cpu, "busy": {k: float(v) for k, v in busy.items()},
                       "detections": [(Path(r[0]).name, r[4], r[1], r[2], r[3]) for r in rows]})
    return m, verdicts, peaks


def _wait_ready(logs: Path, names: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # Score workers report "models warm" once their models are loaded and traced.
        marks = {n: ("models warm" if n.startswith("score") else "ready.") for n in names}
        if all(marks[n] in (logs / f"{n}.log").read_text(errors="replace") for n in names):
            return
        time.sleep(0.5)
    raise SystemExit(f"workers not ready after {timeout} s; see {logs}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=10)
    ap.add_argument("--workers", default="1", help="comma-separated score worker counts for the pipeline runs")
    ap.add_argument("--cpu-processes", type=int, default=1, help="processes of the pipeline's cpu worker (frame sampling, verdicts)")
    ap.add_argument("--skip-reference", action="store_true")
    ap.add_argument("--skip-pipeline", action="store_true")
    ap.add_argument("--precision", choices=["auto", "float32", "bfloat16", "int8"], default="auto",
                    help="VGG16 inference precision for every run but the reference (TT_VGG16_PRECISION)")
    ap.add_argument("--isa", help="cap oneDNN's instruction set for every run, the reference included "
                    "(ONEDNN_MAX_CPU_ISA, e.g. AVX2: TensorFlow and OpenVINO then run as on an AVX2-only CPU; "
                    "onnxruntime ignores it)")
    ap.add_argument("--runtime", choices=["auto", "keras", "onnxruntime", "openvino"], default="auto",
                    help="what runs VGG16 for every run but the reference (TT_VGG16_RUNTIME)")
    ap.add_argument("--skip-scan", action="store_true", help="no in-process scans (verdicts then compared with nothing)")
    ap.add_argument("--work", type=Path, default=ROOT / "bench" / ".work")
    ap.add_argument("--json", type=Path, help="also write the measures here")
    args = ap.parse_args()

    real = SEED.is_dir() and WEIGHTS.is_file()
    if not real:
        raise SystemExit(f"needs the seed videos and weights under {SHARED} (TT_SHARED_DIR)")
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    env = {**env_for(work, real), "TT_VGG16_PRECISION": args.precision, "TT_VGG16_RUNTIME": args.runtime}
    if args.isa:
        env["ONEDNN_MAX_CPU_ISA"] = args.isa
    print(f"CPU: {cpu_summary()}; oneDNN ISA cap: {args.isa or 'none'}; precision: {args.precision}, runtime: {args.runtime}", flush=True)
    videos = make_videos(work / "videos", args.videos)
    train_target(env)
    from workers.settings import Settings

    batch = Settings().batch_size
    measures: list[Measure] = []
    print("ceiling ...", flush=True)
    ceiling = bench_ceiling(env, batch)
    measures.append(ceiling)
    if not args.skip_reference:
        print("reference (tutorial flow) ...", flush=True)
        measures.append(bench_reference(videos, env, tutorial_head(work)))
    scan_verdicts = all_verdicts = f32_verdicts = {}
    if not args.skip_scan:
        print("scan ...", flush=True)
        scan, scan_verdicts = bench_scan(videos, env, all_frames=False)
        scan_all, all_verdicts = bench_scan(videos, env, all_frames=True)
        measures += [scan, scan_all]
        if (args.precision, args.runtime) not in (("float32", "keras"), ("float32", "auto")):
            scan_f32, f32_verdicts = bench_scan(videos, {**env, "TT_VGG16_PRECISION": "float32", "TT_VGG16_RUNTIME": "keras"}, all_frames=True, name="scan-f32")
            measures.append(scan_f32)
    pipeline_verdicts = {}
    if not args.skip_pipeline:
        for k in [int(x) for x in args.workers.split(",")]:
            print(f"pipeline with {k} score worker(s) ...", flush=True)
            m, pipeline_verdicts, _ = bench_pipeline(videos, env, k, args.cpu_processes)
            measures.append(m)

    ref = next((m for m in measures if m.name == "reference"), None)
    print()
    print(f"{'run':<14}{'videos':>7}{'seconds':>9}{'videos/min':>11}{'frames':>8}{'scored':>8}{'scored f/s':>11}{'peak MB':>9}{'x ref':>7}{'eff.':>6}")
    for m in measures:
        vpm = f"{m.videos_per_min:.1f}" if m.videos else "-"
        ratio = f"{m.videos_per_min / ref.videos_per_min:.2f}" if ref and m.videos else "-"
        eff = f"{m.frames_per_s / ceiling.frames_per_s:.2f}" if m.videos else "-"
        print(f"{m.name:<14}{m.videos:>7}{m.seconds:>9.1f}{vpm:>11}{m.frames:>8}{m.scored:>8}{m.frames_per_s:>11.2f}{m.peak_rss_mb:>9.0f}{ratio:>7}{eff:>6}")
    for m in measures:
        if m.note:
            print(f"  {m.name}: {m.note}")
    same = scan_verdicts == all_verdicts and (not pipeline_verdicts or not all_verdicts or pipeline_verdicts == all_verdicts)
    same = same and (not f32_verdicts or all_verdicts == f32_verdicts)
    compared = "early-verdict scan == every-frame scan" + (" == pipeline" if pipeline_verdicts else "")
    compared += " == every-frame float32 scan" if f32_verdicts else ""
    print(f"\nverdicts: {compared}: {same}")
    print("positive:", sorted(v for v, x in (all_verdicts or pipeline_verdicts).items() if x == "positive"))
    if args.json:
        args.json.write_text(json.dumps({"measures": [asdict(m) for m in measures], "same_verdicts": same}, indent=2))
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
