"""What the research-tool exports share (Zeeschuimer NDJSON, 4CAT CSV): a spec naming
an export file or a folder where exports land, read item by item.

A folder is listed like a watched folder: its export files oldest first,
files still being written (modified in the last ``folder_settle_seconds``)
left for the next run. An item that cannot be read is reported as a warning
with its file and line number; the other items are listed. Items are known
by their platform id, so an item in several exports is listed once, and a
watch on the folder lists only items it has not seen.
"""

from __future__ import annotations

import time
from collections.abc import Container, Iterator
from pathlib import Path
from typing import ClassVar

from workers.errors import SourceError
from workers.sources.base import Listing, Source, prefixed_path, spec_path
from workers.video_ref import VideoRef

MAX_BYTES = 500 * 1024 * 1024
MAX_REPORTED = 10  # bad lines named one by one in the warning; the rest are counted


class ExportFileSource(Source):
    """Subclasses set ``prefix`` and ``suffixes`` and read one file with ``items``."""

    prefix: ClassVar[str]
    suffixes: ClassVar[tuple[str, ...]]

    @classmethod
    def suitable(cls, spec: str) -> bool:
        return spec.strip().lower().startswith(cls.prefix)

    @classmethod
    def canonical(cls, spec: str) -> str:
        return prefixed_path(spec, cls.prefix)

    def items(self, path: Path) -> Iterator[tuple[int, VideoRef | str]]:
        """(line number, reference) per item of the file, or (line number, why it cannot be read)."""
        raise NotImplementedError

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
        keys: set[str] = set()
        for path in files:
            if path.stat().st_size > MAX_BYTES:
                listing.warnings.append(f"{path}: larger than {MAX_BYTES // 2**20} MB, skipped")
                continue
            bad: list[str] = []
            for number, item in self.items(path):
                if isinstance(item, str):
                    bad.append(f"line {number}: {item}")
                    continue
                if item.key in keys:
                    continue
                keys.add(item.key)
                listing.offer(item, seen, limit)
            if bad:
                more = f"; and {len(bad) - MAX_REPORTED} more" if len(bad) > MAX_REPORTED else ""
                listing.warnings.append(f"{path}: {len(bad)} item(s) skipped ({'; '.join(bad[:MAX_REPORTED])}{more})")
        if unsettled:
            listing.warnings.append(f"{unsettled} export file(s) still being written; they wait for the next run")
        if not files and not unsettled:
            listing.warnings.append(f"{root}: no {'/'.join(self.suffixes)} export files")
        return listing
