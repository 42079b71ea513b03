"""A folder watched for new video files (searched recursively, symlinked folders not followed).

A file's id is made of its path, size and modification time, so a file
replaced under the same name counts as new. Files modified in the last
``folder_settle_seconds`` are still being copied in and wait for the next
run. Videos are listed oldest first, so a large backlog is worked through in
order, ``limit`` at a time. A file whose name is not valid UTF-8 cannot be
stored by its path: it is skipped with a warning that names it.
"""

from __future__ import annotations

import time
from collections.abc import Container

from workers.errors import SourceError
from workers.sanitize import storable_text
from workers.sources.base import Listing, Source, prefixed_path, spec_path
from workers.video.files import video_files
from workers.video_ref import VideoRef, stable_id

PREFIX = "folder:"


class VideoFolder(Source):
    name = "folder"
    description = "A folder of video files; each run lists the files not seen before."
    examples = ("folder:/srv/incoming", "folder:~/Videos")
    not_examples = ("folderish", "https://example.com/folder/")

    @classmethod
    def suitable(cls, spec: str) -> bool:
        return spec.strip().lower().startswith(PREFIX) or spec_path(spec, PREFIX).is_dir()

    @classmethod
    def canonical(cls, spec: str) -> str:
        return prefixed_path(spec, PREFIX)

    def list_videos(self, spec: str, settings, limit: int | None = None, *, seen: Container[str] = ()) -> Listing:
        folder = spec_path(spec, PREFIX)
        if not folder.is_dir():
            raise SourceError(f"no such folder: {folder}")
        folder = folder.resolve()
        limit = limit or settings.source_limit
        listing = Listing(source=f"{PREFIX}{folder}")
        now = time.time()
        unsettled = 0
        entries, undecodable = [], []
        for path in video_files(folder):
            if storable_text(str(path)) != str(path):  # a path is used as it is: it cannot be made storable
                undecodable.append(storable_text(str(path)))
                continue
            try:
                stat = path.stat()
            except OSError:
                continue  # removed or a dangling link
            if not path.is_file():
                continue
            if now - stat.st_mtime < settings.folder_settle_seconds:
                unsettled += 1
                continue
            entries.append((stat.st_mtime_ns, str(path), stat))
        entries.sort()
        for mtime_ns, name, stat in entries:
            ref = VideoRef(
                platform="file",
                platform_id=stable_id(f"{name}|{stat.st_size}|{mtime_ns}"),
                url=name,
                posted_at=stat.st_mtime,
            )
            listing.offer(ref, seen, limit)
        if unsettled:
            listing.warnings.append(f"{unsettled} file(s) still being written; they wait for the next run")
        if undecodable:
            listing.warnings.append(f"{len(undecodable)} file(s) skipped: their names are not valid UTF-8, rename them ({undecodable[0]})")
        return listing
