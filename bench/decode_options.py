"""Frame extraction with FFmpeg's loop filter skipped: CPU saved against what it does to the frames.

    python bench/decode_options.py --seed-variants 10   # what produces the README numbers (~5 min)
    python bench/decode_options.py --quick              # smoke: one repeat, 20 s generated video

``workers.video.sampling`` tells the decoder to drop non-reference frames
it does not sample (``skip_frame = "NONREF"``, per packet). The next knob is
``skip_loop_filter`` (FFmpeg's AVDiscard option of the H.264/HEVC decoders:
no deblocking on the frames it selects). PyAV exposes it only as a decoder option
given when the codec opens (``codec_context.options``; there is no per-packet
attribute as there is for ``skip_frame``), so one value holds for the whole
stream:

  exact     skip_frame only (the setting skip_loop_filter=false: OpenCV's pixels)
  noref     + skip_loop_filter=noref: only non-reference frames, i.e. here only
            the *sampled* ones (unsampled non-reference frames are not decoded at
            all): nothing drifts, the sampled B-frames lose their deblocking
  bidir     + skip_loop_filter=bidir: all B-frames, reference B-frames too (drift)
  nokey     + skip_loop_filter=nokey: every frame but keyframes (drift until
            the next keyframe: each frame predicts from undeblocked references)
  all       + skip_loop_filter=all

For each video (the seed Trump.mp4 and Biden.mp4, TikTok H.264, and an H.264
re-encode with B-frames of a generated 720p video) it prints the CPU seconds of
the frames stage's decoding (decode + RGB conversion of the sampled frames, the
best of ``--repeats``), sampled frames per CPU-second, the max and mean absolute
pixel difference of the sampled frames against ``exact``, and, with the
``trump`` target trained on the seed CSV as bench/run.py trains it (its bundle and
feature cache under bench/.work), how many sampled frames change side of the
threshold, the largest score change, and how close the closest frame is to the
threshold (min margin: a change larger than that may flip it). Decision rule (issue #13): keep a
variant only if no frame changes side AND it saves CPU.
"""

from __future__ import annotations

import argparse
from fractions import Fraction
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import memory  # noqa: E402  (bench/memory.py: the generated video)
import run  # noqa: E402  (bench/run.py: seed paths, the trump target)

VARIANTS = {"exact": None, "noref": "noref", "bidir": "bidir", "nokey": "nokey", "all": "all"}


def h264_copy(src: Path, dst: Path, bframes: int = 3) -> Path:
    """``src`` re-encoded with libx264 (PyAV's FFmpeg; B-frames on, keyframe every 250 frames as TikTok's)."""
    import av

    if dst.is_file():
        return dst
    part = dst.with_suffix(".part.mp4")
    with av.open(str(src)) as inp, av.open(str(part), "w") as out:
        ins = inp.streams.video[0]
        rate = ins.average_rate or Fraction(30)
        st = out.add_stream("libx264", rate=rate)
        st.width, st.height, st.pix_fmt = ins.codec_context.width, ins.codec_context.height, "yuv420p"
        st.options = {"preset": "veryfast", "crf": "23", "bf": str(bframes), "g": "250"}
        for n, frame in enumerate(inp.decode(ins)):
            frame = frame.reformat(format="yuv420p")
            frame.pts, frame.time_base = n, 1 / rate
            for packet in st.encode(frame):
                out.mux(packet)
        for packet in st.encode():
            out.mux(packet)
    part.replace(dst)
    return dst


def sampled(path: Path, loop_filter: str | None, rate: float, max_side: int) -> tuple[list, float]:
    """(sampled frames, CPU seconds) decoding as sampling.py does, with ``skip_loop_filter`` set at open."""
    from workers.video import sampling

    cpu0 = time.process_time()
    # The module's own reader (not a copy of it): only the decoder's open options differ.
    with sampling.VideoReader(path) as reader:
        if loop_filter:
            reader.stream.codec_context.options = {"skip_loop_filter": loop_filter}
        keep = sampling._every(sampling.frame_step(reader.info.fps, rate))
        frames = list(reader.frames(keep, max_side))
    return frames, time.process_time() - cpu0


def classifier(work: Path, precision: str):
    """The ``trump`` target (trained by bench/run.py's recipe if missing) and its extractors."""
    env = {**run.env_for(work, True), "TT_VGG16_PRECISION": precision}
    run.train_target(env)
    os.environ.update({k: v for k, v in env.items() if k.startswith("TT_")})
    from workers.detect.registry import make_extractors
    from workers.detect.scoring import needed_extractors
    from workers.settings import Settings
    from workers.targets.bundle import load_target

    settings = Settings()
    target = load_target(settings.models_dir, "trump")
    return target, make_extractors(needed_extractors([target]), settings)


def scores(frames, target, extractors) -> list[float]:
    from workers.detect.scoring import collect_scores

    got = collect_scores(frames, [target], extractors, early_verdict=False, duplicate_tolerance=0.0)[target.name]
    return [s.score for s in got]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="one repeat, a 20 s generated video, scores still checked")
    ap.add_argument("--repeats", type=int, default=5, help="decodes per video and variant; the least CPU time counts")
    ap.add_argument("--minutes", type=float, default=1.0, help="length of the generated video")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--precision", default=os.environ.get("TT_VGG16_PRECISION", "float32"),
                    help="VGG16 precision for the score check (float32, bfloat16, int8 where available)")
    ap.add_argument("--seed-variants", type=int, default=0,
                    help="also this many H.264 copies of bench/run.py's seed variants (crops, mirrors, rescales)")
    ap.add_argument("--no-scores", action="store_true", help="skip the classifier check (no weights needed)")
    ap.add_argument("--work", type=Path, default=ROOT / "bench" / ".work")
    args = ap.parse_args()
    if args.quick:
        args.repeats, args.minutes = 1, 1 / 3

    from workers.settings import Settings

    settings = Settings()
    rate, max_side = settings.frame_rate, settings.max_frame_side
    work = args.work.resolve()
    (work / "decode").mkdir(parents=True, exist_ok=True)
    generated = work / "decode" / f"generated-{round(args.minutes * 60)}s.mp4"
    if not generated.is_file():
        memory.make_video(generated.with_suffix(".part.mp4"), args.minutes).replace(generated)
    videos = [p for p in (run.SEED / "Trump.mp4", run.SEED / "Biden.mp4") if p.is_file()]
    videos.append(h264_copy(generated, work / "decode" / f"generated-{round(args.minutes * 60)}s-h264.mp4"))
    if args.seed_variants:
        for v in run.make_videos(work / "videos", args.seed_variants):
            videos.append(h264_copy(v, work / "decode" / f"{v.stem}-h264.mp4"))
    model = None if args.no_scores or not run.WEIGHTS.is_file() else classifier(work, args.precision)
    names = args.variants.split(",")
    print(f"frame rate {rate}/s, max side {max_side}, best of {args.repeats}, VGG16 {args.precision}; "
          f"CPU: {os.cpu_count()} cores, ONEDNN_MAX_CPU_ISA={os.environ.get('ONEDNN_MAX_CPU_ISA', 'unset')}", flush=True)
    w = max(len(v.name) for v in videos) + 2
    print(f"\n{'video':<{w}}{'variant':<9}{'frames':>7}{'CPU s':>8}{'frames/CPU s':>13}{'saved':>7}"
          f"{'max px':>7}{'mean px':>8}{'side changes':>13}{'max |d score|':>14}{'min margin':>11}")
    verdict = {}
    for video in videos:
        base_frames, base_cpu, base_scores = None, None, None
        for name in names:
            cpu = float("inf")
            for _ in range(args.repeats):
                frames, c = sampled(video, VARIANTS[name], rate, max_side)
                cpu = min(cpu, c)
            if base_frames is None:
                base_frames, base_cpu = frames, cpu
            import numpy as np

            diffs = [np.abs(a.image.astype(np.int16) - b.image.astype(np.int16)) for a, b in zip(frames, base_frames)]
            max_px = max(int(d.max()) for d in diffs)
            mean_px = float(np.mean([d.mean() for d in diffs]))
            side, dscore, margin = "-", "-", "-"
            if model is not None:
                got = scores(frames, *model)
                if base_scores is None:
                    base_scores = got
                t = model[0].threshold
                flips = sum((a >= t) != (b >= t) for a, b in zip(got, base_scores))
                side, dscore = f"{flips}/{len(got)}", f"{max(abs(a - b) for a, b in zip(got, base_scores)):.4f}"
                margin = f"{min(abs(b - t) for b in base_scores):.4f}"  # the exact frame closest to the threshold
                verdict.setdefault(name, []).append(flips == 0 and cpu < base_cpu)
            saved = f"{100 * (1 - cpu / base_cpu):.0f}%"
            print(f"{video.name:<{w}}{name:<9}{len(frames):>7}{cpu:>8.3f}{len(frames) / cpu:>13.1f}{saved:>7}"
                  f"{max_px:>7}{mean_px:>8.2f}{side:>13}{dscore:>14}{margin:>11}", flush=True)
    if verdict:
        print("\nkeep (no side change on any video and CPU saved on every one): "
              + ", ".join(f"{n} {'yes' if all(v) else 'no'}" for n, v in verdict.items() if n != "exact"))


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    main()
