"""How far this project's frame hashes are from vPDQ's reference hashes.

ThreatExchange ships sample videos (``tmk/sample-videos/*.mp4``) and, for
each, vPDQ's hash of every frame (``vpdq/sample-hashes/<name>.txt``: frame
number, quality, PDQ hash, timestamp). For every sample video present, this
samples it as the pipeline does (``frame_rate``) and compares the hash this
project stores for each sampled frame (``workers.reposts.hashing``: the
whole frame at full size) with vPDQ's hash of the same frame: median, 95th
percentile and largest distance in bits, and the share beyond 31 bits (a
frame that would not match its own vPDQ hash). For comparison, the same
frames hashed the way this project did before (a 512-pixel copy, after the
``max_frame_side`` cap), and at 2/3 of their size: what hashing after the cap
would do to a 1920-pixel frame (capped at 1280), as no sample video is that large.

    python bench/vpdq_reference.py PATH       # a ThreatExchange checkout or extract
    python bench/vpdq_reference.py PATH --json out.json

Videos whose file is missing (large ones may be Git LFS pointers, or absent
from a snapshot) are named and skipped; with none at all it says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _reference(path: Path) -> dict[int, str]:
    """Frame number -> vPDQ's hash, from one of vPDQ's sample-hash files."""
    out = {}
    for line in path.read_text().split():
        number, _quality, pdq, *_ = line.split(",")
        out[int(number)] = pdq
    return out


def _is_video(path: Path) -> bool:
    with path.open("rb") as fh:
        head = fh.read(64)
    return path.stat().st_size > 1024 and not head.startswith(b"version https://git-lfs")


def _stats(distances: list[int]) -> dict:
    d = np.array(distances)
    return {
        "frames": len(d),
        "median": float(np.median(d)),
        "p95": float(np.percentile(d, 95)),
        "max": int(d.max()),
        "beyond_31": round(float((d > 31).mean()), 4),
    }


def measure(checkout: Path, rate: float, max_side: int) -> dict:
    """Per sample video and overall: the distances of the stored hashes (and of the other inputs) from vPDQ's."""
    import cv2

    from workers.images import fit_within
    from workers.reposts.hashing import hash_frame, luma_of, pdq_of
    from workers.reposts.matching import distances
    from workers.video.sampling import read_sampled

    def shrunk(image: np.ndarray, side: int) -> np.ndarray:
        h, w = image.shape[:2]
        scale = side / max(h, w)
        return image if scale >= 1 else cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)

    inputs = {
        "stored": lambda f: hash_frame(f).pdq,
        "at 2/3 size (a cap)": lambda f: pdq_of(luma_of(shrunk(f.image, round(max(f.image.shape[:2]) * 2 / 3))))[0],
        "512 after the cap (before)": lambda f: pdq_of(luma_of(shrunk(fit_within(f.image, max_side), 512)))[0],
    }
    videos, skipped, overall = {}, [], {k: [] for k in inputs}
    hashes_dir, videos_dir = checkout / "vpdq" / "sample-hashes", checkout / "tmk" / "sample-videos"
    for ref_file in sorted(hashes_dir.glob("*.txt")) if hashes_dir.is_dir() else []:
        if ref_file.stem.endswith("-128x128"):
            continue  # vPDQ's hashes of frames downscaled to 128x128, not its default
        video = videos_dir / f"{ref_file.stem}.mp4"
        if not video.is_file() or not _is_video(video):
            skipped.append(video.name)
            continue
        reference = _reference(ref_file)
        sampled = read_sampled(video, rate)
        found = {k: [] for k in inputs}
        for frame in sampled.frames:
            if frame.index in reference:
                for name, hash_of in inputs.items():
                    found[name].append(int(distances([hash_of(frame)], [reference[frame.index]])[0, 0]))
        shape = sampled.frames[0].image.shape
        videos[video.name] = {"size": f"{shape[1]}x{shape[0]}", **{k: _stats(v) for k, v in found.items() if v}}
        for k, v in found.items():
            overall[k] += v
    return {"videos": videos, "overall": {k: _stats(v) for k, v in overall.items() if v}, "skipped": skipped}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=Path, help="a ThreatExchange checkout or extract (with vpdq/sample-hashes and tmk/sample-videos)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from workers.settings import Settings

    settings = Settings(_env_file=None)
    if not (args.checkout / "vpdq" / "sample-hashes").is_dir():
        print(f"skipped: no vpdq/sample-hashes under {args.checkout} (pass a ThreatExchange checkout or extract)")
        return
    started = time.perf_counter()
    result = measure(args.checkout, settings.frame_rate, settings.max_frame_side)
    if not result["videos"]:
        print(f"skipped: none of vPDQ's sample videos is under {args.checkout / 'tmk' / 'sample-videos'}")
        return
    names = list(result["overall"])
    print(f"bits from vPDQ's reference hashes, frames sampled at {settings.frame_rate:g}/s: median / p95 / max / share beyond 31")
    print(f"{'video':<36} {'size':<10} " + " ".join(f"{n:<28}" for n in names))
    for name, row in [*result["videos"].items(), ("all", {"size": "", **result["overall"]})]:
        cells = [f"{s['median']:g} / {s['p95']:g} / {s['max']} / {s['beyond_31']:.1%} ({s['frames']})" for s in (row[n] for n in names)]
        print(f"{name:<36} {row['size']:<10} " + " ".join(f"{c:<28}" for c in cells))
    if result["skipped"]:
        print(f"skipped (not in this checkout, or an LFS pointer): {', '.join(result['skipped'])}")
    print(f"({time.perf_counter() - started:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
