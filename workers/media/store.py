"""The media store: objects by key, atomically written.

Everything that moves between stages, or outlives a video, is an object in
the store: downloaded videos, frame batches, score files, evidence
thumbnails (their keys: ``workers.media.keys``). An object is addressed by a
*key* (``videos/<job id>/source.mp4``), never by a path (and never by a name
from scraped metadata), so that the store can be a local folder (the default
for one host) or an S3-compatible bucket behind the same interface. Writes
are atomic: a reader sees the whole object or none of it, which keeps re-run
stages idempotent.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from workers.errors import TrackerError, TransientError

_KEY = re.compile(r"^[A-Za-z0-9_.=-]+(/[A-Za-z0-9_.=-]+)*$")


class MediaMissing(TrackerError):
    """An object a stage needs is not in the media store (deleted, or never written)."""


class MediaStoreError(TrackerError):
    """The media store cannot be used as configured (no such bucket, refused credentials, bad URL)."""


class MediaStoreUnavailable(TransientError):
    """The media store did not answer, or answered "later" (unreachable, timeout, 5xx, throttling): retried."""


@dataclass(frozen=True)
class MediaStoreKind:
    """What a store module declares about itself (its ``STORE``): the ``media_url`` schemes it
    serves and how to open it; ``workers.media.store_from_settings`` picks one by the URL's scheme."""

    schemes: tuple[str, ...]  # "": an empty URL or a bare path
    form: str  # what its URLs look like, for the error that lists the accepted forms
    # (Settings, media_url) -> the store; None when the URL is of its scheme but not a form it takes.
    from_settings: Callable[[Any, str], MediaStore | None]


def check_key(key: str) -> str:
    """Keys are relative, '/'-separated names of letters, digits, '.', '_', '=', '-' (no '..')."""
    if not _KEY.match(key) or any(part in (".", "..") for part in key.split("/")):
        raise ValueError(f"invalid media key {key!r}")
    return key


class MediaStore(ABC):
    """Objects by key. Implementations must make ``put`` atomic."""

    @abstractmethod
    def put(self, key: str, data: bytes | BinaryIO) -> None:
        """Store ``data`` (bytes or a readable binary file) under ``key``, replacing any object there."""

    @contextmanager
    def writer(self, key: str) -> Iterator[BinaryIO]:
        """A binary file to write an object into, stored under ``key`` (atomically)
        when the block ends without an error; nothing is stored otherwise."""
        with tempfile.SpooledTemporaryFile(max_size=64 << 20) as tmp:
            yield tmp
            tmp.seek(0)
            self.put(key, tmp)

    def put_file(self, key: str, path: str | Path, move: bool = False) -> None:
        """Store a copy of the local file at ``path`` (``move``: and remove the file)."""
        with open(path, "rb") as fh:
            self.put(key, fh)
        if move:
            Path(path).unlink(missing_ok=True)

    @contextmanager
    def download_area(self) -> Iterator[Path]:
        """A fresh, empty local folder for a downloader to write into, removed afterwards.

        Put what it wrote into the store with ``put_file(key, path, move=True)``."""
        with tempfile.TemporaryDirectory(prefix="tt-download-") as folder:
            yield Path(folder)

    def drop_stale_downloads(self, older_than: float) -> int:
        """Remove download areas left by dead workers (untouched for ``older_than`` seconds); how many."""
        return 0

    def get(self, key: str) -> bytes:
        with self.open(key) as fh:
            return fh.read()

    @abstractmethod
    @contextmanager
    def open(self, key: str) -> Iterator[BinaryIO]:
        """A readable binary file of the object; ``MediaMissing`` when absent."""

    @abstractmethod
    @contextmanager
    def local_path(self, key: str) -> Iterator[Path]:
        """A local file holding the object, for libraries that need a path (OpenCV)."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def size(self, key: str) -> int | None:
        """The object's bytes; None when it is absent."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; no error when it is already gone."""

    @abstractmethod
    def keys(self, prefix: str = "") -> Iterator[str]:
        """Keys of the objects under the folder ``prefix`` (``frames``, ``videos/12``; "": all)."""

    @abstractmethod
    def describe(self) -> str:
        """Where the store is, for logs and messages."""

    def location(self, key: str) -> str:
        """Where a person finds the object (a file path for a local store)."""
        return f"{self.describe()}/{check_key(key)}"


def drop_stale_folders(parent: Path, older_than: float) -> int:
    """Remove the folders in ``parent`` where nothing changed for ``older_than`` seconds
    (download areas and copies of dead workers); how many."""
    if not parent.is_dir():
        return 0
    dropped = 0
    for folder in parent.iterdir():
        try:
            newest = max([folder.stat().st_mtime, *(p.stat().st_mtime for p in folder.rglob("*"))])
        except OSError:
            continue
        if folder.is_dir() and time.time() - newest > older_than:
            shutil.rmtree(folder, ignore_errors=True)
            dropped += 1
    return dropped


def _file_mode() -> int:
    """The mode of a file created the ordinary way (0666 less the umask; 0644 usually)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


FILE_MODE = _file_mode()


class LocalMediaStore(MediaStore):
    """A directory (local, or a volume shared by every worker host)."""

    DOWNLOADS = ".downloads"  # download areas: hidden, not keys, never listed

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, data: bytes | BinaryIO) -> None:
        with self.writer(key) as out:
            if isinstance(data, (bytes, bytearray, memoryview)):
                out.write(data)
            else:
                shutil.copyfileobj(data, out, 1 << 20)

    @contextmanager
    def writer(self, key: str) -> Iterator[BinaryIO]:
        final = self.path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent)
        os.fchmod(fd, FILE_MODE)  # mkstemp's 0600 would hide thumbnails from the user's group
        try:
            with os.fdopen(fd, "wb") as out:
                yield out
            os.replace(tmp, final)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @contextmanager
    def open(self, key: str) -> Iterator[BinaryIO]:
        try:
            fh = open(self.path(key), "rb")
        except FileNotFoundError:
            raise MediaMissing(f"{key}: not in the media store at {self.root}") from None
        with fh:
            yield fh

    @contextmanager
    def local_path(self, key: str) -> Iterator[Path]:
        path = self.path(key)
        if not path.is_file():
            raise MediaMissing(f"{key}: not in the media store at {self.root}")
        yield path

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def size(self, key: str) -> int | None:
        try:
            return self.path(key).stat().st_size
        except FileNotFoundError:
            return None

    def put_file(self, key: str, path: str | Path, move: bool = False) -> None:
        if not move:
            return super().put_file(key, path)
        final = self.path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(path, final)  # a rename when the download area is in the store
        except OSError:
            super().put_file(key, path, move=True)

    @contextmanager
    def download_area(self) -> Iterator[Path]:
        parent = self.root / self.DOWNLOADS
        parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="dl-", dir=parent) as folder:
            yield Path(folder)

    def drop_stale_downloads(self, older_than: float) -> int:
        return drop_stale_folders(self.root / self.DOWNLOADS, older_than)

    def delete(self, key: str) -> None:
        path = self.path(key)
        path.unlink(missing_ok=True)
        # Drop now-empty folders up to the root (videos/12/ once its file is gone).
        for parent in path.parents:
            if parent == self.root or self.root not in parent.parents:
                break
            try:
                parent.rmdir()
            except OSError:
                break

    def keys(self, prefix: str = "") -> Iterator[str]:
        folder = self.path(prefix) if prefix else self.root
        if folder.is_dir():
            for path in sorted(folder.rglob("*")):
                relative = path.relative_to(self.root)
                if path.is_file() and not any(part.startswith(".") for part in relative.parts):
                    yield relative.as_posix()

    def describe(self) -> str:
        return str(self.root)

    def location(self, key: str) -> str:
        return str(self.path(key).resolve())


def _local_store(settings, url: str) -> LocalMediaStore | None:
    """Empty: ``<data_dir>/media``; ``file:///path`` or ``/path``: that folder; None for a relative one."""
    if not url:
        return LocalMediaStore(settings.media_dir)
    path = url.removeprefix("file://")
    return LocalMediaStore(path) if path.startswith("/") else None


STORE = MediaStoreKind(("", "file"), "an absolute folder (empty: <data_dir>/media)", _local_store)
