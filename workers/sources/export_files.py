"""What the research-tool export sources share (``zeeschuimer:``, ``4cat:``): a spec naming
an export file or a folder where exports land, read item by item.

Both prefixes read every format the two tools write (Zeeschuimer's NDJSON and CSV,
4CAT's NDJSON and CSV; see ``export_ndjson`` and ``export_csv``), told apart by
their content. A folder is listed like a watched folder: its export files oldest
first, files still being written (modified in the last ``folder_settle_seconds``)
left for the next run. An item that cannot be read is reported as a warning with
its file and line number; the other items are listed. A file with no TikTok videos
at all (comments, another platform, another kind of CSV) is named in one line: an
error when the spec names that file, a warning when it lies in a watched folder.
Items are known by their platform id, so an item in several exports, or captured
several times, is listed once, with its latest capture's counts; a watch on the
folder lists only items it has not seen.
"""

from __future__ import annotations

import time
from collections.abc import Container, Iterator
from pathlib import Path
from typing import ClassVar

from workers.errors import SourceError
from workers.sources.base import Listing, Source, prefixed_path, spec_path
from workers.sources.export_csv import read_csv
from workers.sources.export_items import NO_VIDEOS, ExportItem, NotVideos
from workers.sources.export_ndjson import read_ndjson
from workers.video_ref import VideoRef

MAX_BYTES = 500 * 1024 * 1024
MAX_REPORTED = 10  # bad lines named one by one in the warning; the rest are counted
SUFFIXES = (".ndjson", ".jsonl", ".csv")


def read_export(path: Path) -> Iterator[ExportItem]:
    """The items of one export file, NDJSON or CSV by its first character.

    Raises ``NotVideos`` when the file as a whole is not a TikTok video export."""
    with open(path, "rb") as fh:
        start = fh.read(4096).removeprefix(b"\xef\xbb\xbf").lstrip()
    if not start:
        raise NotVideos("an empty file")
    if start.startswith(b"{"):
        return read_ndjson(path)
    if start.startswith(b"["):
        raise NotVideos("a JSON array, not an export with one item a line (a TikTok JSON listing is read as tiktok-json:FILE)")
    return read_csv(path)


def file_items(path: Path) -> tuple[list[ExportItem], str | None]:
    """The items of ``path``, and when it holds no TikTok video, what it is instead (one line)."""
    try:
        items = list(read_export(path))
    except NotVideos as exc:
        return [], str(exc)
    if any(item.ref for item in items):
        return items, None
    kinds = {item.kind for item in items if item.kind}
    if len(kinds) == 1:
        return items, f"{kinds.pop()}: {NO_VIDEOS}"
    if not items:
        return items, "no items in it"
    return items, f"no TikTok videos in it ({_skipped(items)})"


def _skipped(items: list[ExportItem]) -> str:
    bad = [f"line {item.line}: {item.problem}" for item in items if item.ref is None]
    more = f"; and {len(bad) - MAX_REPORTED} more" if len(bad) > MAX_REPORTED else ""
    return f"{len(bad)} item(s) skipped ({'; '.join(bad[:MAX_REPORTED])}{more})"


class ExportFileSource(Source):
    """Subclasses set the ``prefix`` users write (and ``name``, ``description``, ``examples``)."""

    prefix: ClassVar[str]
    suffixes: ClassVar[tuple[str, ...]] = SUFFIXES

    @classmethod
    def suitable(cls, spec: str) -> bool:
        return spec.strip().lower().startswith(cls.prefix)

    @classmethod
    def canonical(cls, spec: str) -> str:
        return prefixed_path(spec, cls.prefix)

    def files(self, spec: str, settings) -> tuple[Path, list[Path], int]:
        path = spec_path(spec, self.prefix)
        if path.is_file():
            return path.resolve(), [path.resolve()], 0
        if not path.is_dir():
            raise SourceError(f"no such {self.name} export file or folder: {path}")
        now, unsettled, found = time.time(), 0, []
        for candidate in path.resolve().rglob("*"):
            if candidate.suffix.lower() not in self.suffixes or not candidate.is_file():
                continue
            mtime = candidate.stat().st_mtime
            if now - mtime < settings.folder_settle_seconds:
                unsettled += 1
                continue
            found.append((mtime, str(candidate)))
        return path.resolve(), [Path(name) for _, name in sorted(found)], unsettled

    def list_videos(self, spec: str, settings, limit: int | None = None, *, seen: Container[str] = ()) -> Listing:
        root, files, unsettled = self.files(spec, settings)
        limit = limit or settings.source_limit
        listing = Listing(source=f"{self.prefix}{root}")
        # Per video: (capture time or -1, file, line) of its latest capture, and its reference.
        latest: dict[str, tuple[tuple[float, int, int], VideoRef]] = {}
        for index, path in enumerate(files):
            if path.stat().st_size > MAX_BYTES:
                if root.is_file():
                    raise SourceError(f"{path}: larger than {MAX_BYTES // 2**20} MB")
                listing.warnings.append(f"{path}: larger than {MAX_BYTES // 2**20} MB, skipped")
                continue
            items, what = file_items(path)
            if what:
                if root.is_file():
                    raise SourceError(f"{path}: {what}")
                listing.warnings.append(f"{path}: {what}; skipped")
                continue
            for item in items:
                if item.ref is None:
                    continue
                rank = (item.captured if item.captured is not None else -1.0, index, item.line)
                known = latest.get(item.ref.key)
                if known is None or rank > known[0]:
                    latest[item.ref.key] = (rank, item.ref)
            if any(item.ref is None for item in items):
                listing.warnings.append(f"{path}: {_skipped(items)}")
        for _, ref in latest.values():
            listing.offer(ref, seen, limit)
        if unsettled:
            listing.warnings.append(f"{unsettled} export file(s) still being written; they wait for the next run")
        if not files and not unsettled:
            listing.warnings.append(f"{root}: no {'/'.join(self.suffixes)} export files")
        return listing
