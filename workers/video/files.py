"""Which files are videos, and finding them in folders."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".m4v", ".webm", ".mkv", ".avi", ".3gp", ".flv", ".mpg", ".mpeg", ".ts"})


def video_files(folder: Path) -> list[Path]:
    """Video files under ``folder`` (by suffix; hidden files and folders skipped,
    symlinked folders not followed), sorted."""
    found = []
    for root, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if not name.startswith(".") and Path(name).suffix.lower() in VIDEO_SUFFIXES:
                found.append(Path(root) / name)
    return sorted(found)


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given; folders expanded to the video files inside (sorted, recursive)."""
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            out.extend(video_files(p))
        else:
            out.append(p)
    return out
