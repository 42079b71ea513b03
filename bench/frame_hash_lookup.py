"""Lookup time of the stored frame hashes' index, at 10^4, 10^5 and 10^6 hashes.

Fills a fresh SQLite database (the schema of the migrations) with N random
frame hashes (synthetic: uniform random 256-bit PDQ hashes, one distinct
hash per frame row, 16 chunk entries each), then times
``workers.reposts.hash_index.near_frames`` (what repost linking calls) for
query hashes: half of them within 8-31 bits of a stored hash (must be
found), half random (nothing to find). Prints, per size, the median and
95th-percentile time of one query hash, the index rows probed and the
candidates it had to check; exits 1 if a planted near hash was missed.

    python bench/frame_hash_lookup.py                    # 10^4, 10^5, 10^6
    python bench/frame_hash_lookup.py --sizes 10000 100000 --queries 200
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from workers.reposts.matching import MAX_DISTANCE, index_keys, probe_keys  # noqa: E402
from workers.storage.db import get_engine, session_scope  # noqa: E402
from workers.reposts.hash_index import near_frames  # noqa: E402
from workers.storage.models import FrameHashChunk  # noqa: E402

CHUNK_ROWS = 200_000  # rows per executemany


def random_hashes(rng: np.random.Generator, n: int) -> list[str]:
    raw = rng.integers(0, 256, size=(n, 32), dtype=np.uint8)
    return [bytes(r).hex() for r in raw]


def near_copy(rng: np.random.Generator, pdq: str) -> str:
    """``pdq`` with 8 to 31 random bits flipped."""
    bits = np.unpackbits(np.frombuffer(bytes.fromhex(pdq), np.uint8))
    flip = rng.choice(256, size=int(rng.integers(8, MAX_DISTANCE + 1)), replace=False)
    bits[flip] ^= 1
    return np.packbits(bits).tobytes().hex()


def fill(db_url: str, hashes: list[str]) -> None:
    """One video, ``len(hashes)`` frame rows, their chunk entries inserted in key order."""
    engine = get_engine(db_url)
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("INSERT INTO videos (id, source, status, created_at, updated_at) VALUES (1, 'bench', 'done', '2026-01-01', '2026-01-01')")
        cur.executemany(
            "INSERT INTO frame_hashes (id, video_id, frame_index, timestamp, quality, chroma, pdq, centre) VALUES (?, 1, ?, ?, 100, 0, ?, ?)",
            ((i + 1, i, float(i), h, h) for i, h in enumerate(hashes)),
        )
        entries = sorted((key, i + 1) for i, h in enumerate(hashes) for key in index_keys(h))
        for start in range(0, len(entries), CHUNK_ROWS):
            cur.executemany("INSERT INTO frame_hash_chunks (chunk, frame_hash_id) VALUES (?, ?)", entries[start : start + CHUNK_ROWS])
        raw.commit()
        cur.execute("ANALYZE")
    finally:
        raw.close()


def measure(size: int, queries: int, folder: Path, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    stored = random_hashes(rng, size)
    db_url = f"sqlite:///{folder / f'hashes-{size}.db'}"
    started = time.perf_counter()
    fill(db_url, stored)
    filled = time.perf_counter() - started
    planted = [(int(i) + 1, near_copy(rng, stored[i])) for i in rng.choice(size, size=queries // 2, replace=False)]
    others = random_hashes(rng, queries - len(planted))
    times, candidates, missed = [], [], 0
    with session_scope(db_url) as s:
        rows = s.scalar(select(func.count()).select_from(FrameHashChunk))
        for expect, query in [*planted, *((None, q) for q in others)]:
            t0 = time.perf_counter()
            found = near_frames(s, [query])
            times.append(time.perf_counter() - t0)
            missed += expect is not None and expect not in found
            keys = probe_keys(query)
            candidates.append(s.scalar(select(func.count()).select_from(FrameHashChunk).where(FrameHashChunk.chunk.in_(keys))))
    times.sort()
    return {
        "hashes": size, "index_rows": rows, "fill_s": round(filled, 1),
        "median_ms": round(1000 * statistics.median(times), 2), "p95_ms": round(1000 * times[int(0.95 * (len(times) - 1))], 2),
        "probes": len(probe_keys(stored[0])), "candidates": round(statistics.mean(candidates), 1), "missed": missed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--work", type=Path, default=None, help="folder for the databases (default: temporary)")
    args = parser.parse_args()
    folder = args.work or Path(tempfile.mkdtemp(prefix="frame-hash-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"{'hashes':>9} {'index rows':>11} {'fill s':>7} {'median ms':>10} {'p95 ms':>7} {'probes':>6} {'candidates':>10} {'missed':>6}")
    missed = 0
    for size in args.sizes:
        r = measure(size, args.queries, folder)
        missed += r["missed"]
        print(f"{r['hashes']:>9} {r['index_rows']:>11} {r['fill_s']:>7} {r['median_ms']:>10} {r['p95_ms']:>7} "
              f"{r['probes']:>6} {r['candidates']:>10} {r['missed']:>6}", flush=True)
        for path in folder.glob(f"hashes-{size}.db*"):
            os.remove(path)
    raise SystemExit(1 if missed else 0)


if __name__ == "__main__":
    main()
