"""The score stage on an accelerator, and video decoding on it, in one run within a time budget.

    bench/gpu_host.sh                                                   # on the GPU host: everything, <= 10 min
    KERAS_BACKEND=jax python bench/gpu_score.py --budget 540 --decode VIDEO...
    KERAS_BACKEND=jax python bench/gpu_score.py --batches 2,4 --precisions float32 --seconds 2 --budget 60   # smoke on CPU

Part 1, score: for each precision (``--precisions``, default bfloat16 and
float32) and batch size (``--batches``, default 32-512) it times
``VGG16Backbone.features`` (what the score worker calls: host preprocessing,
transfer, forward pass, features back on the host) on batches made of frames
of several videos (``--videos-per-batch``: how a score worker batching across
videos fills them), after compiling that shape. Prints frames/s and the ratio
to the best.

Part 2, decode (``--decode VIDEO...``): sampled frames (1 a second, the product's
default) per wall second and per CPU second of the host, for every decoder it
finds: the frames stage's own (PyAV on the CPU, ``workers.video.sampling``),
PyAV with FFmpeg's CUDA hardware acceleration (NVDEC), torchcodec on CPU and on
CUDA, PyNvVideoCodec. Each prints "not available (why)" when it cannot run.

Then the CPU cores one accelerator needs: best score frames/s over the sampled
frames one core extracts per CPU second, with CPU decoding and with the best
hardware decoder (its host CPU time counted).

Every part checks ``--budget`` (total seconds) before it starts and is skipped
("skipped: budget") when too little is left. Needs NumPy and Keras with a
backend (JAX on the GPU host; no TensorFlow there); the decoders are optional.
No network: random weights unless ``--weights`` names a file (the cost is the same).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
START = time.monotonic()


class Budget:
    def __init__(self, seconds: float) -> None:
        self.end = START + seconds

    @property
    def left(self) -> float:
        return self.end - time.monotonic()

    def allows(self, seconds: float) -> bool:
        return self.left >= seconds


def frames_from_videos(n_videos: int, per_video: int, seed: int = 0):
    """``n_videos`` x ``per_video`` backbone-sized frames; each video has its own base
    picture with per-frame noise (content does not change the cost; this keeps it honest)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_videos):
        base = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
        for _ in range(per_video):
            noise = rng.integers(-8, 9, base.shape)
            out.append(np.clip(base.astype(np.int16) + noise, 0, 255).astype(np.uint8))
    return out


def time_backbone(backbone, frames, batch: int, seconds: float) -> tuple[float, int]:
    """Frames/s of ``backbone.extract`` over ``frames`` in batches of ``batch`` (cycling)."""
    done, start, i = 0, time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        chunk = [frames[(i + k) % len(frames)] for k in range(batch)]
        backbone.extract(chunk)
        done += batch
        i += batch
    return done / (time.perf_counter() - start), done


def score_part(args, budget: Budget) -> float | None:
    """Frames/s per precision and batch size; returns the best (None: nothing ran)."""
    try:
        from workers.detect.backbone import VGG16Backbone
        from workers.detect.runtime import keras

        k = keras()
    except Exception as exc:  # noqa: BLE001  (any missing piece: report it, go on to decoding)
        print(f"score: not available ({type(exc).__name__}: {exc})", flush=True)
        return None
    backend = k.backend.backend()
    devices = "?"
    if backend == "jax":
        import jax

        devices = ", ".join(str(d) for d in jax.devices())
    print(f"score: keras {k.__version__}, backend {backend}, devices: {devices}", flush=True)
    sizes = [int(b) for b in args.batches.split(",")]
    frames = frames_from_videos(args.videos_per_batch, max(sizes) // args.videos_per_batch + 1)
    results = []
    for precision in args.precisions.split(","):
        try:
            backbone = VGG16Backbone(args.weights, args.preprocessing, precision=precision)
        except Exception as exc:  # noqa: BLE001
            print(f"  {precision}: not available ({type(exc).__name__}: {exc})", flush=True)
            continue
        for batch in sizes:
            if not budget.allows(args.seconds + args.compile_allowance + args.reserve):
                print(f"  {precision} batch {batch}: skipped: budget", flush=True)
                continue
            t0 = time.perf_counter()
            backbone.extract(frames[:batch])  # compile this shape
            backbone.extract(frames[:batch])
            compile_s = time.perf_counter() - t0
            rate, n = time_backbone(backbone, frames, batch, args.seconds)
            results.append((precision, batch, rate))
            print(f"  {precision:<9} batch {batch:>4}: {rate:9.1f} frames/s ({n} frames; compile + 2 passes {compile_s:.1f} s)",
                  flush=True)
    if not results:
        return None
    best = max(r for *_, r in results)
    print(f"\n{'precision':<10}{'batch':>6}{'frames/s':>10}{'of best':>9}")
    for precision, batch, rate in results:
        print(f"{precision:<10}{batch:>6}{rate:>10.1f}{rate / best:>9.2f}")
    return best


# --- decoding ------------------------------------------------------------------------------


def _measure(decode, videos) -> tuple[int, float, float]:
    """(sampled frames, wall s, CPU s of this process) of ``decode(video) -> frames`` over ``videos``."""
    wall0, cpu0, n = time.perf_counter(), time.process_time(), 0
    for v in videos:
        n += decode(v)
    return n, time.perf_counter() - wall0, time.process_time() - cpu0


def _steps(fps: float) -> int:
    return max(1, int(fps))  # 1 frame a second, as workers.video.sampling.frame_step at rate 1


def decode_rate(videos: list[Path]) -> tuple[float, int, float]:
    """(sampled frames per CPU-second, sampled frames, CPU seconds) for the frames stage's work:
    ``workers.video.sampling`` (non-reference frames not sampled are skipped; the loop filter as
    the settings say) + the backbone resize."""
    from workers.detect.backbone import resize_frame
    from workers.settings import Settings
    from workers.video.sampling import read_sampled

    skip = Settings().skip_loop_filter
    cpu0, frames = time.process_time(), 0
    for video in videos:
        sampled = read_sampled(video, 1.0, 1280, skip)
        for f in sampled.frames:
            resize_frame(f.image)
        frames += len(sampled.frames)
    cpu = time.process_time() - cpu0
    return frames / cpu, frames, cpu


def decoders() -> dict:
    """name -> a function(video) -> sampled frames decoded, or the reason it cannot run."""
    out: dict = {}
    try:
        import workers.video.sampling  # noqa: F401  (PyAV, OpenCV)

        out["frames stage (cpu)"] = lambda v: decode_rate([v])[1]
    except Exception as exc:  # noqa: BLE001
        out["frames stage (cpu)"] = f"{type(exc).__name__}: {exc}"

    try:
        import av

        def pyav(v, hwaccel=None):
            with av.open(str(v), hwaccel=hwaccel) as c:
                s = c.streams.video[0]
                s.thread_count = 1  # as the frames stage decodes
                step, n = _steps(float(s.average_rate or 30)), 0
                for i, frame in enumerate(c.decode(s)):
                    if i % step == 0:
                        frame.to_ndarray(format="rgb24")
                        n += 1
                if hwaccel is not None and not s.codec_context.is_hwaccel:
                    raise RuntimeError("decoded, but not on the GPU (software fallback)")
                return n

        out["pyav-cpu (every frame)"] = pyav
        try:
            from av.codec.hwaccel import HWAccel, hwdevices_available

            if "cuda" not in hwdevices_available():
                raise RuntimeError(f"PyAV {av.__version__}: no cuda hwdevice (has {hwdevices_available()})")
            out["pyav-nvdec"] = lambda v: pyav(v, HWAccel(device_type="cuda", allow_software_fallback=False))
        except Exception as exc:  # noqa: BLE001
            out["pyav-nvdec"] = f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # noqa: BLE001
        out["pyav-cpu (every frame)"] = out["pyav-nvdec"] = f"{type(exc).__name__}: {exc}"

    try:
        from torchcodec.decoders import VideoDecoder

        def torchcodec_on(device):
            def run(v):
                d = VideoDecoder(str(v), device=device)
                idx = list(range(0, d.metadata.num_frames or len(d), _steps(d.metadata.average_fps or 30)))
                return int(d.get_frames_at(indices=idx).data.shape[0])
            return run

        out["torchcodec-cpu"] = torchcodec_on("cpu")
        out["torchcodec-cuda"] = torchcodec_on("cuda")
    except Exception as exc:  # noqa: BLE001
        out["torchcodec-cpu"] = out["torchcodec-cuda"] = f"{type(exc).__name__}: {exc}"

    try:
        import PyNvVideoCodec as nvc

        def pynv(v):
            dec = nvc.SimpleDecoder(str(v), gpu_id=0, use_device_memory=True)
            fps = float(getattr(dec.get_stream_metadata(), "average_fps", 0) or 30)
            return len(dec.get_batch_frames_by_index(list(range(0, len(dec), _steps(fps)))))

        out["pynvvideocodec"] = pynv
    except Exception as exc:  # noqa: BLE001
        out["pynvvideocodec"] = f"{type(exc).__name__}: {exc}"
    return out


def decode_part(videos: list[Path], budget: Budget, reserve: float) -> dict[str, tuple[int, float, float]]:
    """Per decoder: (sampled frames, wall s, CPU s) over ``videos``, one warm-up video first."""
    print(f"\ndecode: {len(videos)} videos, 1 sampled frame a second", flush=True)
    results = {}
    for name, decode in decoders().items():
        if isinstance(decode, str):
            print(f"  {name:<24} not available ({decode})", flush=True)
            continue
        if not budget.allows(reserve):
            print(f"  {name:<24} skipped: budget", flush=True)
            continue
        try:
            decode(videos[0])  # warm-up: library and device initialisation
            n, wall, cpu = _measure(decode, videos)
        except Exception as exc:  # noqa: BLE001
            print(f"  {name:<24} not available ({type(exc).__name__}: {str(exc)[:200]})", flush=True)
            continue
        results[name] = (n, wall, cpu)
        print(f"  {name:<24} {n} frames, {wall:.2f} s wall, {cpu:.2f} CPU s: {n / wall:.0f} frames/s, "
              f"{n / max(cpu, 1e-9):.0f} frames per CPU s", flush=True)
    return results


def cores_needed(best: float | None, decoded: dict[str, tuple[int, float, float]]) -> None:
    if best is None or not decoded:
        print("\ncores per accelerator: not available (needs both parts)")
        return
    print(f"\ncores to keep {best:.0f} frames/s busy (every sampled frame scored; the early verdict and "
          "near-duplicate reuse lower the frames scored per frame decoded, and raise this in proportion):")
    for name, (n, wall, cpu) in decoded.items():
        per_cpu_s = n / max(cpu, 1e-9)
        print(f"  {name:<24} {best / per_cpu_s:7.2f} cores (host CPU {1000 * cpu / n:.1f} ms a sampled frame"
              f"{'' if 'cpu' in name else f'; one stream {n / wall:.0f} frames/s'})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", default="32,64,128,256,512", help="comma-separated batch sizes")
    ap.add_argument("--precisions", "--precision", default="bfloat16,float32", help="comma-separated")
    ap.add_argument("--videos-per-batch", type=int, default=8, help="distinct videos whose frames fill each batch")
    ap.add_argument("--seconds", type=float, default=15.0, help="timing per batch size and precision")
    ap.add_argument("--budget", type=float, default=540.0, help="total seconds for everything (parts past it are skipped)")
    ap.add_argument("--compile-allowance", type=float, default=30.0, help="seconds a new shape may take to compile")
    ap.add_argument("--reserve", type=float, default=60.0, help="seconds kept for the decode part")
    ap.add_argument("--weights", default="random", help="a VGG16 notop .weights.h5 file (default: random, same cost)")
    ap.add_argument("--preprocessing", default="caffe", choices=["caffe", "torch"])
    ap.add_argument("--decode", nargs="*", type=Path, default=[], help="videos to measure decoding on")
    args = ap.parse_args()
    budget = Budget(args.budget)
    print(f"budget {args.budget:.0f} s; host: {os.cpu_count()} cores", flush=True)
    best = score_part(args, budget)
    videos = [v for v in args.decode if v.is_file()]
    decoded = decode_part(videos, budget, min(args.reserve, 20.0)) if videos else {}
    if not videos:
        print("\ndecode: not available (no videos given)")
    cores_needed(best, decoded)
    print(f"\ntotal {time.monotonic() - START:.0f} s")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    main()
