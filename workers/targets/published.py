"""Targets that workers pull: bundles published in the media store.

With an object store (``TT_MEDIA_URL=s3://...``) a worker host has no ``models/``
of its own. Publishing a target (``target train``, ``target add-face``, a review
correction, ``target push NAME``) uploads its bundle folder to

    targets/<name>/<version>/<file>     the bundle's files, never changed once written
    targets/<name>/current.json         {"version", "files", "meta"}: written last

(keys: ``workers.media.keys``). A worker reads the pointer for each video (one
small GET), downloads a version it has not seen into its own cache
(``<data_dir>/cache/targets/<version>/<name>/``, atomically: the models folder may be read-only) and loads it from
there, so a new version is used from the next video on, without a restart, and
a video already being scored keeps the version it started with.

Why the media store rather than the database: a bundle is files (a classifier's
head is a few MB), the store already holds every other file that moves between
hosts, and its atomic PUT gives "the old version or the whole new one" without
a schema change. Old versions stay in the store: results name the version that
produced them.

With the folder store (the single-host default) nothing changes: targets are read
from ``models_dir`` as before (``FolderTargets``).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Protocol

from workers.detect.base import Target, check_name
from workers.errors import BadTarget, TargetNotFound, TrackerError
from workers.media import store_from_settings
from workers.media.keys import TARGETS, target_file_key, target_of_pointer, target_pointer_key
from workers.media.store import LocalMediaStore, MediaMissing, MediaStore
from workers.targets import bundle


class TargetCatalog(Protocol):
    """Where a process finds targets: by name, their metadata (cheap) and the loaded model."""

    def names(self) -> list[str]: ...

    def meta(self, name: str) -> dict: ...

    def load(self, name: str) -> Target: ...


class FolderTargets:
    """Bundles in ``models_dir`` (one host, or a folder every host mounts)."""

    def __init__(self, models_dir: Path) -> None:
        self.models_dir = Path(models_dir)

    def names(self) -> list[str]:
        return bundle.list_targets(self.models_dir)

    def meta(self, name: str) -> dict:
        return bundle.target_meta(self.models_dir, name)

    def load(self, name: str) -> Target:
        return bundle.load_target(self.models_dir, name)


class PublishedTargets:
    """Bundles published in a shared media store, cached under ``cache``."""

    def __init__(self, store: MediaStore, cache: Path) -> None:
        self.store, self.cache = store, Path(cache)

    def names(self) -> list[str]:
        return sorted(n for n in map(target_of_pointer, self.store.keys(TARGETS)) if n)

    def pointer(self, name: str) -> dict:
        check_name(name)
        try:
            data = self.store.get(target_pointer_key(name))
        except MediaMissing:
            known = ", ".join(self.names()) or "none published yet"
            raise TargetNotFound(
                f"no target named {name!r} published in the media store {self.store.describe()} (known: {known}); "
                f"publish it with `tiktok-tracker target push {name}` where it was saved"
            ) from None
        try:
            pointer = json.loads(data)
            pointer["version"], pointer["files"], pointer["meta"]  # noqa: B018 - all three must be there
        except (ValueError, KeyError, TypeError):
            raise BadTarget(f"{self.store.location(target_pointer_key(name))}: damaged pointer of target {name!r}") from None
        return pointer

    def meta(self, name: str) -> dict:
        return self.pointer(name)["meta"]

    def load(self, name: str) -> Target:
        pointer = self.pointer(name)
        version = str(pointer["version"])
        root = self.cache / check_name(version)
        if not (root / name / bundle.META).is_file():
            self._download(name, version, pointer["files"], root)
        return bundle.load_target(root, name)

    def _download(self, name: str, version: str, files: list[str], root: Path) -> None:
        """Fetch one version's files into ``root/<name>/`` (a whole folder or none)."""
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
        try:
            for file in files:
                try:
                    data = self.store.get(target_file_key(name, version, file))
                except MediaMissing:
                    raise BadTarget(
                        f"target {name!r} version {version}: {file} is missing from the media store {self.store.describe()}; "
                        f"publish it again with `tiktok-tracker target push {name}`"
                    ) from None
                path = staging / file
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
            try:
                staging.rename(root / name)
            except OSError:  # another process of this host got there first
                if not (root / name / bundle.META).is_file():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def publishes_targets(store: MediaStore) -> bool:
    """Whether targets travel through the store: yes for an object store; a folder store
    keeps the single-host layout (workers read ``models_dir``)."""
    return not isinstance(store, LocalMediaStore)


def catalog_for(settings, store: MediaStore | None = None) -> TargetCatalog:
    """The catalog this process reads targets from (see the module docstring)."""
    store = store if store is not None else store_from_settings(settings)
    if publishes_targets(store):
        return PublishedTargets(store, published_cache(settings))
    return FolderTargets(settings.models_dir)


def publish(store: MediaStore, models_dir: Path, name: str) -> str:
    """Upload the saved bundle ``name`` from ``models_dir`` (files first, then the pointer); its version."""
    folder = bundle.bundle_dir(models_dir, name)
    meta = bundle.target_meta(models_dir, name)
    version = str(meta.get("version") or "")
    if not version:
        raise BadTarget(f"{folder}: the bundle has no version; save it again (`target train` / `target add-face`)")
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    for file in files:
        store.put_file(target_file_key(name, version, file), folder / file)
    pointer = {"name": name, "version": version, "files": files, "meta": meta}
    store.put(target_pointer_key(name), json.dumps(pointer, indent=2, sort_keys=True).encode())
    return version


def save_target(target: Target, settings, extra: dict | None = None) -> tuple[Path, str | None]:
    """``bundle.save_target`` into ``models_dir``, then, with an object store, publish it
    for every worker; (the bundle's folder, where it was published or None)."""
    path = bundle.save_target(target, settings.models_dir, extra)
    store = store_from_settings(settings)
    if not publishes_targets(store):
        return path, None
    publish(store, settings.models_dir, target.name)
    return path, store.location(target_pointer_key(target.name))


def push(settings, name: str) -> tuple[str, str]:
    """``target push NAME``: publish an already saved target; (version, pointer location)."""
    store = store_from_settings(settings)
    if not publishes_targets(store):
        raise TrackerError(
            f"the media store is the folder {store.describe()}: workers read targets from {settings.models_dir} "
            "directly. Set TT_MEDIA_URL to an s3:// store to publish targets for workers on other hosts"
        )
    version = publish(store, settings.models_dir, name)
    return version, store.location(target_pointer_key(name))


def listing(settings) -> list[dict]:
    """What ``target list`` shows: each target saved in ``models_dir`` (``bundle.summary``)
    and, with an object store, what workers get: ``published`` (the version they load,
    None when never pushed) and the targets published from another host (``saved``: False)."""
    entries = {n: bundle.summary(settings.models_dir, n) for n in bundle.list_targets(settings.models_dir)}
    store = store_from_settings(settings)
    if not publishes_targets(store):
        return list(entries.values())
    catalog = PublishedTargets(store, published_cache(settings))
    for entry in entries.values():
        entry["published"], entry["saved"] = None, True
    for name in catalog.names():
        try:
            meta = catalog.meta(name)
        except TrackerError as exc:
            entries.setdefault(name, {"name": name, "saved": False, "published": None, "error": str(exc)})
            continue
        entry = entries.get(name) or {**bundle.summary_of_meta(meta, name, store.location(target_pointer_key(name))), "saved": False}
        entry["published"] = str(meta.get("version") or "")
        entries[name] = entry
    return [entries[n] for n in sorted(entries)]


def published_cache(settings) -> Path:
    """Where a worker keeps the published versions it pulled: under the data dir (written by
    every worker anyway), not the models folder, which compose mounts read-only."""
    return Path(settings.cache_dir) / "targets"
