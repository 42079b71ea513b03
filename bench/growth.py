"""How cost grows with targets, video length and score processes, against a cost model.

    python bench/growth.py --precision float32 --json growth-f32.json               # README tables (~6 min, 2 quiet cores)
    python bench/growth.py --precision float32 --all-frames --json growth-all.json  # every frame scored (~12 min)
    python bench/growth.py --quick                                                  # smoke (~2 min)

The first run also generates the videos (2 x 15 s, 60 s, 10 min at 720p: about 2
minutes) and the targets (bench/run.py's training when its cache is cold: minutes).

The cost model (CPU seconds of one video):

    frames stage x video seconds      (decode, 224x224 copies, the frame batch; JPEG full frames when a face target reads them)
  + VGG16 x frames through VGG16 + head x sum over classifier targets of their frames
  + face pass x frames through the face models + face compare x sum over face targets of their frames

All classifier heads share one VGG16 pass per frame and all face targets one
face detection + embedding pass; a target's own cost is its head (or its
gallery comparison). The four unit costs are measured first, in this process,
on the same kind of frames (CPU seconds from ``time.process_time``, every
thread counted), then each dimension is varied alone around a base case of
10 targets (5 + 5), 60 s videos, 1 score process:

  targets    1 (one classifier), 10 (5 classifier + 5 face), 50 (25 + 25)
  length     15 s, 60 s, 10 min (1280x720, 10 fps: bench/memory.py's generated video,
             the astronaut drifting over a blurred backdrop)
  processes  1, 2, 4 score workers (the machine's cores: 2)

Each case runs ``--videos`` distinct videos through the Celery pipeline of
bench/run.py (``bench_pipeline``: io, cpu and K score workers on the local Redis
and Postgres, warm before the clock starts). Product defaults: 1 sampled frame
a second, early verdict and near-duplicate reuse on (so "frames through the
models" is read from the detections, not assumed). Classifier targets are
copies of bench/run.py's ``trump`` target (the seed CSV, real VGG16 weights; it
calls these videos positive, decided early, as the face targets, copies of
the astronaut enrolled from ``workers.demo_media``'s photo, do): with the early
verdict a target stops after ~16 frames whatever the video's length, so
``--all-frames`` (every sampled frame through the models) shows the per-frame
term grow. A copy costs what a distinct target costs (the same head or gallery size).

Printed per case: wall seconds; CPU seconds measured per worker (cpu worker =
frames + verdict stages, score workers = score stage, io = download + alert)
next to the model's prediction; busy seconds per stage; and efficiency =
(predicted CPU seconds / cores) / wall seconds: 1.0 is a pipeline that keeps
every core on the model's intrinsic work the whole time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import gpu_score  # noqa: E402  (bench/gpu_score.py: the frames stage's decode cost)
import memory  # noqa: E402  (bench/memory.py: the generated video)
import run  # noqa: E402  (bench/run.py: the pipeline driver, the trump target)

FACE = "astronaut"


@dataclass(frozen=True)
class Case:
    targets: int  # classifier + face targets; 1 = one classifier
    seconds: int
    workers: int

    @property
    def split(self) -> tuple[int, int]:
        """(classifier, face) targets."""
        return (1, 0) if self.targets == 1 else (self.targets - self.targets // 2, self.targets // 2)


def copies(models: Path, source: str, prefix: str, n: int) -> list[str]:
    """``n`` targets that are copies of the bundle ``source`` under other names."""
    names = [f"{prefix}-{i:02d}" for i in range(n)]
    for name in names:
        folder = models / name
        if not folder.is_dir():
            shutil.copytree(models / source, folder)
            meta = json.loads((folder / "target.json").read_text())
            (folder / "target.json").write_text(json.dumps({**meta, "name": name}, indent=2, sort_keys=True) + "\n")
    return names


def prepare_targets(env: dict, work: Path, classifiers: int, faces: int) -> tuple[list[str], list[str]]:
    models = Path(env["TT_MODELS_DIR"])
    run.train_target(env)
    if not (models / FACE).is_dir():
        from workers.demo_media import demo_reference_photo

        photo = demo_reference_photo(work / "photos")
        subprocess.run([*run.CLI, "target", "add-face", FACE, str(photo)], env=env, check=True, capture_output=True)
    return copies(models, "trump", "cls", classifiers), copies(models, FACE, "face", faces)


def videos_of(work: Path, seconds: int, count: int) -> list[Path]:
    out = []
    for i in range(count):
        path = work / "videos" / f"astronaut-{seconds}s-{i}.mp4"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            print(f"  generating {path.name} ...", flush=True)
            memory.make_video(path.with_suffix(".part.mp4"), seconds / 60, phase=float(i)).replace(path)
        out.append(path)
    return out


def _cpu(fn, repeats: int) -> float:
    """CPU seconds of one call of ``fn``, the mean of ``repeats`` after one unmeasured call."""
    fn()
    cpu0 = time.process_time()
    for _ in range(repeats):
        fn()
    return (time.process_time() - cpu0) / repeats


def unit_costs(env: dict, video: Path, frames: int) -> dict[str, float]:
    """The model's four unit costs, in CPU seconds, measured here on ``video``'s sampled frames."""
    os.environ.update({k: v for k, v in env.items() if k.startswith("TT_")})
    from workers.detect.backbone import resize_frame
    from workers.detect.registry import make_extractors
    from workers.settings import Settings
    from workers.targets.bundle import load_target
    from workers.video.sampling import probe_video, read_sampled

    settings = Settings()
    seconds = probe_video(video).duration
    units = {"decode + resize per video-second": _cpu(lambda: gpu_score.decode_rate([video]), 2) / seconds}
    for full in (False, True):
        units[f"frames stage per video-second{', full frames' if full else ''}"] = (
            _cpu(lambda: frames_stage(video, settings, full), 2) / seconds)
    cls, face = load_target(settings.models_dir, "trump"), load_target(settings.models_dir, FACE)
    extractors = make_extractors({cls.extractor_key, face.extractor_key}, settings)
    vgg, faces = extractors[cls.extractor_key], extractors[face.extractor_key]
    sampled = read_sampled(video, settings.frame_rate, settings.max_frame_side).frames[:frames]
    full = [f.image for f in sampled]
    small = [resize_frame(i) for i in full]
    idx, ts = [f.index for f in sampled], [f.timestamp for f in sampled]
    b = settings.batch_size
    forward = _cpu(lambda: [vgg.extract(small[i : i + b]) for i in range(0, len(small), b)], 1) / len(small)
    feats = vgg.extract(small)
    chunks = range(0, len(small), b)  # heads score a pass's chunk at a time, as the score stage does
    head = _cpu(lambda: [cls.score(feats[i : i + b], idx[i : i + b], ts[i : i + b]) for i in chunks], 3) / len(small)
    found = faces.extract(full)
    face_pass = _cpu(lambda: faces.extract(full), 1) / len(full)
    compare = _cpu(lambda: [face.score(found[i : i + b], idx[i : i + b], ts[i : i + b]) for i in chunks], 3) / len(full)
    return {**units, "VGG16 per frame": forward, "head per frame and target": head,
            "face pass per frame": face_pass, "face compare per frame and target": compare}


def frames_stage(video: Path, settings, full_frames: bool) -> int:
    """The frames stage's work on ``video`` without its database: sample (with the PDQ hashes
    when repost matching is on), write the frame batch (backbone copies; JPEG full frames for
    face targets) into memory. Returns the frames written."""
    import io

    from workers import processing
    from workers.detect.registry import by_view
    from workers.media.frame_batch import write_frame_stream

    views = list(by_view(["classifier", "face"] if full_frames else ["classifier"]))
    with processing.sample(video, settings, []) as (reader, frames):
        return write_frame_stream(io.BytesIO(), frames, lambda: reader.info, views, extra=lambda: reader.decoding().to_json())


def predict(units: dict, case: Case, videos: list[Path], detections: list, classifiers: set, faces: set) -> dict:
    """Predicted CPU seconds of the frames and score stages from the unit costs and the
    frames each target actually took through the models (the detections)."""
    from workers.video.sampling import probe_video

    unit = units["frames stage per video-second" + (", full frames" if case.split[1] else "")]
    frames_cpu = unit * sum(probe_video(v).duration for v in videos)
    score_cpu, vgg_frames, face_frames = 0.0, 0, 0
    for video in {d[0] for d in detections}:
        mine = [d for d in detections if d[0] == video]
        cls = [d[4] for d in mine if d[1] in classifiers]
        fac = [d[4] for d in mine if d[1] in faces]
        vgg_frames += max(cls, default=0)
        face_frames += max(fac, default=0)
        score_cpu += (units["VGG16 per frame"] * max(cls, default=0) + units["head per frame and target"] * sum(cls)
                      + units["face pass per frame"] * max(fac, default=0)
                      + units["face compare per frame and target"] * sum(fac))
    return {"frames": frames_cpu, "score": score_cpu, "vgg_frames": vgg_frames, "face_frames": face_frames,
            "sampled": sum(d[3] for d in detections if d[1] == detections[0][1])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 video a case, 1/4 targets, 10/20 s, 1/2 processes")
    ap.add_argument("--videos", type=int, default=2, help="distinct videos per case")
    ap.add_argument("--targets", default="1,10,50")
    ap.add_argument("--lengths", default="15,60,600", help="video seconds")
    ap.add_argument("--workers", default="1,2,4", help="score processes")
    ap.add_argument("--base", default="10,60,1", help="base case: targets,seconds,workers")
    ap.add_argument("--unit-frames", type=int, default=32, help="frames the unit costs are measured on")
    ap.add_argument("--precision", default=os.environ.get("TT_VGG16_PRECISION", "auto"),
                    help="VGG16 precision (TT_VGG16_PRECISION): auto, float32, bfloat16, int8 where the runtime exists")
    ap.add_argument("--all-frames", action="store_true", help="early verdict and near-duplicate reuse off (TT_EARLY_VERDICT, "
                    "TT_DUPLICATE_TOLERANCE): every sampled frame through the models")
    ap.add_argument("--work", type=Path, default=ROOT / "bench" / ".work")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    if args.quick:
        args.videos, args.targets, args.lengths, args.workers, args.base, args.unit_frames = 1, "1,4", "10,20", "1,2", "4,10,1", 8
    if not (run.SEED.is_dir() and run.WEIGHTS.is_file()):
        raise SystemExit(f"needs the seed data and VGG16 weights under {run.SHARED} (TT_SHARED_DIR)")

    work = args.work.resolve()
    env = {**run.env_for(work, True), "TT_VGG16_PRECISION": args.precision}
    if args.all_frames:
        env.update(TT_EARLY_VERDICT="false", TT_DUPLICATE_TOLERANCE="0")
    bt, bs, bw = (int(x) for x in args.base.split(","))
    cases = {"targets": [Case(int(t), bs, bw) for t in args.targets.split(",")],
             "length": [Case(bt, int(s), bw) for s in args.lengths.split(",")],
             "processes": [Case(bt, bs, int(w)) for w in args.workers.split(",")]}
    cls_names, face_names = prepare_targets(env, work / "growth", max(c.split[0] for cs in cases.values() for c in cs),
                                            max(c.split[1] for cs in cases.values() for c in cs))
    for c in {c for cs in cases.values() for c in cs}:
        videos_of(work / "growth", c.seconds, args.videos)

    print(f"units ({args.unit_frames} frames of a {bs} s video; precision {args.precision}; {os.cpu_count()} cores, "
          f"ONEDNN_MAX_CPU_ISA={os.environ.get('ONEDNN_MAX_CPU_ISA', 'unset')}) ...", flush=True)
    units = unit_costs(env, videos_of(work / "growth", bs, 1)[0], args.unit_frames)
    for k, v in units.items():
        print(f"  {k:<44} {v * 1000:9.2f} CPU ms")

    cores = os.cpu_count() or 1
    done: dict[Case, dict] = {}
    for dim, cs in cases.items():
        for case in cs:
            if case in done:
                continue
            ncls, nface = case.split
            targets = cls_names[:ncls] + face_names[:nface]
            videos = videos_of(work / "growth", case.seconds, args.videos)
            print(f"{dim}: {case} ...", flush=True)
            m, _verdicts, _peaks = run.bench_pipeline(videos, env, case.workers, targets=targets)
            pred = predict(units, case, videos, m.stats["detections"], set(cls_names), set(face_names))
            cpu = m.stats["cpu"]
            done[case] = {"wall": m.seconds, "cpu": cpu, "busy": m.stats["busy"], "pred": pred,
                          "verdicts": sorted({(d[1].split("-")[0], d[2]) for d in m.stats["detections"]})}

    header = (f"{'case':<24}{'wall s':>8}{'sampled':>8}{'VGG f':>7}{'face f':>7}"
              f"{'frames CPU':>12}{'score CPU':>12}{'io CPU':>7}{'total CPU':>12}{'eff.':>6}   busy s (frames/score/verdict)")
    for dim, cs in cases.items():
        print(f"\n{dim} (CPU seconds: measured / predicted)\n{header}")
        for case in cs:
            r = done[case]
            p, cpu, busy = r["pred"], r["cpu"], r["busy"]
            score_cpu = sum(v for k, v in cpu.items() if k.startswith("score"))
            total, total_pred = sum(cpu.values()), p["frames"] + p["score"]
            label = f"{case.targets} ({case.split[0]}+{case.split[1]}), {case.seconds}s, x{case.workers}"
            print(f"{label:<24}{r['wall']:>8.1f}{p['sampled']:>8}{p['vgg_frames']:>7}{p['face_frames']:>7}"
                  f"{cpu['cpu']:>6.1f}/{p['frames']:<5.1f}{score_cpu:>6.1f}/{p['score']:<5.1f}{cpu['io']:>7.1f}"
                  f"{total:>6.1f}/{total_pred:<5.1f}{total_pred / cores / r['wall']:>6.2f}   "
                  f"{busy.get('frames', 0):.1f}/{busy.get('score', 0):.1f}/{busy.get('verdict', 0):.1f}  {r['verdicts']}")
    if args.json:
        args.json.write_text(json.dumps({"units": units, "cases": {f"{c.targets},{c.seconds},{c.workers}": r
                                                                   for c, r in done.items()}}, indent=2, default=str))


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    main()
