"""Published targets (workers/targets/published.py): publish, pull into a cache, new versions,
and the reasons a worker cannot get one. The catalog works over any MediaStore; a folder
store stands in for the bucket here (tests/test_multihost.py does it over S3 between hosts)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from workers.detect.face import EMBEDDING_SIZE, FaceTarget
from workers.errors import BadTarget, TargetNotFound, TrackerError
from workers.media.keys import target_file_key, target_pointer_key
from workers.media.store import LocalMediaStore
from workers.pipeline.stages import LoadedModels
from workers.settings import Settings
from workers.targets import bundle, published


def _face(name: str, tolerance: float = 0.5) -> FaceTarget:
    rng = np.random.default_rng(0)
    return FaceTarget(name, rng.normal(size=(2, EMBEDDING_SIZE)), ["a.jpg", "b.jpg"], tolerance=tolerance, embedder={"model": "test"})


def test_publish_then_pull_by_version(tmp_path):
    store = LocalMediaStore(tmp_path / "bucket")
    models = tmp_path / "publisher-models"
    bundle.save_target(_face("alice"), models)
    version = published.publish(store, models, "alice")
    pointer = json.loads(store.get(target_pointer_key("alice")))
    assert pointer["version"] == version and "gallery.npy" in pointer["files"] and pointer["meta"]["version"] == version
    assert store.exists(target_file_key("alice", version, "target.json"))

    worker = published.PublishedTargets(store, tmp_path / "worker-cache")
    assert worker.names() == ["alice"] and worker.meta("alice")["version"] == version
    loaded = worker.load("alice")
    assert loaded.version == version and np.array_equal(loaded.gallery, _face("alice").gallery)
    assert (tmp_path / "worker-cache" / version / "alice" / "gallery.npy").is_file()

    # A new version: the worker's LoadedModels takes it for the next video, no restart.
    models_seen = LoadedModels(Settings(_env_file=None, models_dir=tmp_path / "worker-models"), worker)
    (first,) = models_seen.targets(["alice"])
    bundle.save_target(_face("alice", tolerance=0.4), models)
    newer = published.publish(store, models, "alice")
    assert newer != version
    (second,) = models_seen.targets(["alice"])
    assert (first.version, second.version) == (version, newer) and second.tolerance == pytest.approx(0.4)


def test_a_worker_that_cannot_get_a_target_says_why(tmp_path):
    store = LocalMediaStore(tmp_path / "bucket")
    worker = published.PublishedTargets(store, tmp_path / "cache")
    with pytest.raises(TargetNotFound, match="no target named 'bob' published.*target push bob"):
        worker.load("bob")
    models = tmp_path / "models"
    bundle.save_target(_face("bob"), models)
    version = published.publish(store, models, "bob")
    store.delete(target_file_key("bob", version, "gallery.npy"))
    with pytest.raises(BadTarget, match="gallery.npy is missing"):
        worker.load("bob")
    store.put(target_pointer_key("bob"), b"{not json")
    with pytest.raises(BadTarget, match="damaged pointer"):
        worker.meta("bob")


def test_the_folder_store_keeps_targets_in_models_dir(tmp_path):
    """The single-host default: nothing is published, workers read models_dir as before."""
    settings = Settings(_env_file=None, data_dir=tmp_path / "data", models_dir=tmp_path / "models")
    path, where = published.save_target(_face("carol"), settings)
    assert where is None and path == tmp_path / "models" / "carol"
    assert not (tmp_path / "data" / "media").exists()
    catalog = published.catalog_for(settings)
    assert isinstance(catalog, published.FolderTargets) and catalog.names() == ["carol"]
    with pytest.raises(TrackerError, match="TT_MEDIA_URL"):
        published.push(settings, "carol")


def test_target_list_shows_what_workers_load(tmp_path):
    """With an S3 store ``target list`` shows, beside what is saved here, the version
    workers load: the same, another one, not published, or published from another host."""
    import os
    import subprocess
    import sys

    from tests.s3_support import MotoServer

    server = MotoServer(tmp_path / "s3")
    server.start()
    try:
        media = server.env(server.create_bucket("tt-list"))

        def host(name: str) -> Settings:
            return Settings(
                _env_file=None, data_dir=tmp_path / name / "data", models_dir=tmp_path / name / "models",
                media_url=media["TT_MEDIA_URL"], s3_endpoint_url=media["TT_S3_ENDPOINT_URL"], s3_region=media["TT_S3_REGION"],
                s3_access_key_id=media["TT_S3_ACCESS_KEY_ID"], s3_secret_access_key=media["TT_S3_SECRET_ACCESS_KEY"],
            )

        publisher, worker = host("publisher"), host("worker")
        published.save_target(_face("alice"), publisher)  # saved and published
        published.save_target(_face("bob"), publisher)
        old_bob = bundle.target_meta(publisher.models_dir, "bob")["version"]
        bundle.save_target(_face("bob", tolerance=0.4), publisher.models_dir)  # saved again, not pushed
        bundle.save_target(_face("carol"), publisher.models_dir)  # never pushed

        rows = {e["name"]: e for e in published.listing(publisher)}
        assert rows["alice"]["published"] == rows["alice"]["version"] and rows["alice"]["saved"]
        assert rows["bob"]["published"] == old_bob != rows["bob"]["version"]
        assert rows["carol"]["published"] is None and rows["carol"]["saved"]

        rows = {e["name"]: e for e in published.listing(worker)}  # a worker host: nothing saved
        assert sorted(rows) == ["alice", "bob"] and not rows["alice"]["saved"]
        assert rows["bob"]["published"] == old_bob and rows["bob"]["kind"] == "face"

        env = {**{k: v for k, v in os.environ.items() if not k.startswith(("TT_", "AWS_"))}, **media,
               "TT_DATA_DIR": str(worker.data_dir), "TT_MODELS_DIR": str(worker.models_dir), "COLUMNS": "160"}
        proc = subprocess.run([sys.executable, "-m", "workers.cli.main", "target", "list"], env=env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert "workers load" in proc.stdout and proc.stdout.count("published elsewhere") == 2
        env.update(TT_DATA_DIR=str(publisher.data_dir), TT_MODELS_DIR=str(publisher.models_dir))
        proc = subprocess.run([sys.executable, "-m", "workers.cli.main", "target", "list"], env=env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert "this version" in proc.stdout and "not published" in proc.stdout and "target push publishes" in proc.stdout
    finally:
        server.kill()
