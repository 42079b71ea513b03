"""CPU cost of repost hashing in the frames stage: ``processing.sample`` on the seed videos with
repost matching off (the reference, measured in the same run) and at several ``repost_hash_rate``s.

    python bench/repost_cost.py [--rates 1,3,10] [--repeat 3]

Prints CPU seconds (best of ``--repeat``) and the ratio to sampling without hashes.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from workers.processing.steps import sample
from workers.settings import Settings

SEED = Path(__file__).resolve().parents[2] / "shared" / "data" / "seed"


def cpu_seconds(path: Path, settings: Settings, repeat: int) -> tuple[float, int]:
    """Best CPU time of sampling ``path`` (with its hashes when matching is on), and the hashes made."""
    best, made = float("inf"), 0
    for _ in range(repeat):
        hashes: list = []
        started = time.process_time()
        with sample(path, settings, hashes) as (_reader, frames):
            for _frame in frames:
                pass
        best, made = min(best, time.process_time() - started), len(hashes)
    return best, made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="1,3,10", help="repost_hash_rate values, comma-separated")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=Path, default=SEED, help="folder with Trump.mp4 and Biden.mp4")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    print(f"{'video':10s} {'setting':22s} {'CPU s':>7s} {'x no hashes':>12s}")
    for name in ("Biden.mp4", "Trump.mp4"):
        path = args.seed / name
        reference, _ = cpu_seconds(path, Settings(repost_matching=False), args.repeat)
        print(f"{name:10s} {'no repost matching':22s} {reference:7.2f} {1:12.2f}")
        for rate in rates:
            seconds, made = cpu_seconds(path, Settings(repost_hash_rate=rate), args.repeat)
            print(f"{name:10s} {f'repost_hash_rate {rate:g}':22s} {seconds:7.2f} {seconds / reference:12.2f}  ({made} frames hashed and kept)")


if __name__ == "__main__":
    main()
