"""Reposts recognised by what they show: the acceptance measurement.

From each seed video (``../shared/data/seed/Trump.mp4``, ``Biden.mp4``) it
makes, with ffmpeg, the edits reposts get (``VARIANTS``: another bitrate, a
5% crop, 3/4 scale, a mirror, the first 2 s trimmed, a caption band burned
in, 0.9x speed, without audio, with other audio), and 18 other distinct
videos (slow pans over scikit-image's sample pictures). Then, through the
same code the pipeline and ``scan`` use (``workers.reposts.linking`` over a
SQLite database), it links the distinct videos first (none may link to
another: false links) and then every variant (each must link to its own
seed video). It prints one line per video and the totals; exit status 1
when fewer than 90% of the variants link to their original or any false
link is made.

    python bench/repost_variants.py              # seed videos from ../shared (TT_SHARED_DIR)
    python bench/repost_variants.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TT_SHARED_DIR", ROOT.parent / "shared"))

# name -> ffmpeg output options (video filter, audio handling). ``{tone}`` is a second input: a sine tone.
VARIANTS: dict[str, list[str]] = {
    "bitrate": ["-b:v", "150k"],
    "crop5": ["-vf", "crop=trunc(iw*0.95/2)*2:trunc(ih*0.95/2)*2"],
    "scale34": ["-vf", "scale=trunc(iw*0.75/2)*2:trunc(ih*0.75/2)*2"],
    "mirror": ["-vf", "hflip"],
    "trim2": ["-ss", "2"],
    "caption": ["-vf", "drawbox=x=0:y=ih*0.75:w=iw:h=ih*0.12:color=black@0.85:t=fill,"
                       "drawbox=x=iw*0.1:y=ih*0.785:w=iw*0.8:h=ih*0.05:color=white@0.9:t=fill"],
    "speed09": ["-vf", "setpts=PTS/0.9", "-af", "atempo=0.9"],
    "mute": ["-an"],
    "music": ["{tone}", "-map", "0:v", "-map", "1:a", "-shortest"],
}
# scikit-image pictures shipped inside the package (no download): the distinct videos' content.
PICTURES = (
    "astronaut", "brick", "camera", "cat", "clock", "coffee", "coins", "colorwheel", "grass", "gravel",
    "horse", "hubble_deep_field", "immunohistochemistry", "logo", "moon", "page", "retina", "rocket",
)


def ffmpeg_exe() -> str:
    """The ffmpeg that imageio-ffmpeg ships (test extras), else the system's."""
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        found = shutil.which("ffmpeg")
        if not found:
            raise SystemExit("needs ffmpeg: pip install imageio-ffmpeg, or install ffmpeg")
        return found


def make_variant(src: Path, name: str, dst: Path, ffmpeg: str | None = None) -> Path:
    """``src`` edited as ``VARIANTS[name]`` says, written to ``dst`` (H.264, AAC when it has sound)."""
    ffmpeg = ffmpeg or ffmpeg_exe()
    options = list(VARIANTS[name])
    inputs = ["-i", str(src)]
    if options and options[0] == "{tone}":
        options = options[1:]
        inputs += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"]
    seek = []
    if options[:1] == ["-ss"]:
        seek, options = options[:2], options[2:]
    cmd = [ffmpeg, "-hide_banner", "-loglevel", "error", "-y", *seek, *inputs, *options,
           "-c:v", "libx264", "-preset", "veryfast", "-threads", "1", "-pix_fmt", "yuv420p", str(dst)]
    if "-b:v" not in options:
        cmd[-1:-1] = ["-crf", "26"]
    if "-an" not in options:
        cmd[-1:-1] = ["-c:a", "aac", "-b:a", "64k"]
    subprocess.run(cmd, check=True, capture_output=True)
    return dst


def make_variants(src: Path, folder: Path, names=None, ffmpeg: str | None = None) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return {n: make_variant(src, n, folder / f"{src.stem.lower()}-{n}.mp4", ffmpeg) for n in (names or VARIANTS)}


def _picture(name: str) -> np.ndarray:
    from skimage import data

    image = getattr(data, name)()
    if image.dtype != np.uint8:
        image = (np.clip(image.astype(np.float64), 0, 1) * 255).astype(np.uint8)
    if image.ndim == 2:
        image = np.stack([image] * 3, -1)
    return np.ascontiguousarray(image[..., :3])


def write_pan_video(path: Path, picture: np.ndarray, seconds: float = 8.0, fps: float = 15.0,
                    size: tuple[int, int] = (270, 480)) -> Path:
    """A portrait video panning and zooming slowly over ``picture`` (real footage moves)."""
    w, h = size
    big = cv2.resize(picture, (w * 2, int(w * 2 * picture.shape[0] / picture.shape[1]) + h), interpolation=cv2.INTER_CUBIC)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    n = int(seconds * fps)
    for i in range(n):
        t = i / max(1, n - 1)
        zoom = 1.6 - 0.4 * t
        cw, ch = int(w * zoom), int(h * zoom)
        x = int((big.shape[1] - cw) * t)
        y = int((big.shape[0] - ch) * (0.5 - 0.3 * np.sin(np.pi * t)))
        crop = big[y : y + ch, x : x + cw]
        writer.write(cv2.cvtColor(cv2.resize(crop, (w, h), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def distinct_videos(folder: Path, pictures=PICTURES) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [write_pan_video(folder / f"pan-{name}.mp4", _picture(name)) for name in pictures]


def _hashes(path: Path):
    from workers.reposts.hashing import hash_frames
    from workers.video.sampling import read_sampled

    return hash_frames(read_sampled(path).frames)


def _link(db_url: str, path: Path, settings) -> tuple[int, int | None, float | None, str]:
    """Add ``path`` as a video and link it (the pipeline's frames stage does the same)."""
    from workers.reposts import linking
    from workers.storage.db import session_scope
    from workers.storage.models import Video, VideoStatus

    hashes = _hashes(path)
    with session_scope(db_url) as s:
        video = Video(source=str(path), status=VideoStatus.DONE, meta={})
        s.add(video)
        s.flush()
        link = linking.link_repost(s, video, hashes, settings.repost_link_at)
        action = link.action(settings.repost_reuse_at)
        return video.id, link.original_id, (link.match.strength if link.match else None), action


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None, help="folder for the generated videos (default: a temporary one)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from workers.settings import Settings

    seeds = [SHARED / "data" / "seed" / "Trump.mp4", SHARED / "data" / "seed" / "Biden.mp4"]
    if not all(p.is_file() for p in seeds):
        raise SystemExit(f"needs the seed videos under {SHARED}/data/seed (TT_SHARED_DIR)")
    work = args.work or Path(tempfile.mkdtemp(prefix="repost-variants-"))
    settings = Settings(_env_file=None)
    db_url = f"sqlite:///{work / 'links.db'}"
    started = time.perf_counter()
    distinct = [*seeds, *distinct_videos(work / "distinct")]
    variants = {seed: make_variants(seed, work / "variants") for seed in seeds}
    made = time.perf_counter() - started

    rows, ids = [], {}
    for path in distinct:
        vid, original, strength, action = _link(db_url, path, settings)
        ids[path] = vid
        rows.append({"video": path.name, "of": "-", "linked_to": original, "match": strength, "action": action,
                     "ok": original is None})
    for seed, made_variants in variants.items():
        for name, path in made_variants.items():
            vid, original, strength, action = _link(db_url, path, settings)
            rows.append({"video": path.name, "of": seed.name, "variant": name, "linked_to": original, "match": strength,
                         "action": action, "ok": original == ids[seed]})
    names = {v: p.name for p, v in ids.items()}
    for row in rows:
        row["linked_to"] = names.get(row["linked_to"], row["linked_to"])
        match = "-" if row["match"] is None else f"{row['match']:.2f}"
        print(f"{row['video']:<28} {row['of']:<10} linked to {str(row['linked_to'] or '-'):<14} match {match:<5} "
              f"{row['action']:<6} {'ok' if row['ok'] else 'WRONG'}")
    variant_rows = [r for r in rows if r["of"] != "-"]
    linked = sum(r["ok"] for r in variant_rows)
    strong = sum(r["ok"] and r["action"] == "reuse" for r in variant_rows)
    false_links = sum(not r["ok"] for r in rows if r["of"] == "-") + sum(
        r["linked_to"] is not None and not r["ok"] for r in variant_rows)
    rate = linked / len(variant_rows)
    print(f"\nvariants linked to their original: {linked}/{len(variant_rows)} ({rate:.0%}), "
          f"{strong} strongly enough to reuse its verdicts")
    print(f"false links among {len(distinct)} distinct videos and {len(variant_rows)} variants: {false_links}")
    print(f"(videos made in {made:.0f} s, linked in {time.perf_counter() - started - made:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "linked": linked, "variants": len(variant_rows),
                                         "strong": strong, "false_links": false_links}, indent=1))
    raise SystemExit(0 if rate >= 0.9 and false_links == 0 else 1)


if __name__ == "__main__":
    main()
