"""``target train NAME --with-reviews``: frames reviewers marked become labelled
examples (random-weight VGG16 and generated media, as tests/test_classifier_cli.py)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.test_classifier_cli import RED, cli_env, colour_folders, run_cli
from tests.videos import write_video


def test_train_with_reviews_adds_marked_frames(tmp_path, monkeypatch):
    env = cli_env(tmp_path)
    images = colour_folders(tmp_path / "images", 4)
    train = ["target", "train", "red", "--images", str(images), "--positive-class", "red", "--epochs", "5", "--folds", "0", "--augment", "0"]
    run_cli(env, *train, check=True)
    first = json.loads((tmp_path / "models" / "red" / "target.json").read_text())["version"]
    video = write_video(tmp_path / "red.mp4", seconds=3, color=RED)
    run_cli(env, "scan", str(video), "-t", "red", "--all-frames", "--json", check=True)

    for key, value in env.items():
        if key.startswith("TT_"):
            monkeypatch.setenv(key, value)
    from workers.review.service import mark_frames
    from workers.settings import get_settings
    from workers.storage.db import session_scope
    from workers.storage.models import Detection

    get_settings.cache_clear()
    settings = get_settings()
    with session_scope(settings.resolved_database_url) as s:
        det = s.query(Detection).one()
        indices = [f.frame_index for f in det.frame_scores]
    assert mark_frames(settings, det.id, indices[:1], "target").target_version is None  # classifier: no new version yet
    mark_frames(settings, det.id, indices[1:], "not_target", reviewer="ann")

    # The targets page's button runs the same command in the background.
    from starlette.testclient import TestClient

    from tests.web_support import CSRF
    from workers.review.training import RUNNING
    from workers.web.app import create_app

    client = TestClient(create_app(settings), follow_redirects=False)
    token = CSRF.search(client.get("/targets").text).group(1)
    assert client.post("/targets/red/train", data={"csrf": token}).status_code == 303
    assert RUNNING["red"].wait(600) == 0
    log = (Path(settings.data_dir) / "reviews" / "red-retrain.log").read_text()
    assert f"{len(indices)} reviewed frame(s) added" in log
    meta = json.loads((tmp_path / "models" / "red" / "target.json").read_text())
    assert meta["dataset"]["reviewed_frames"] == len(indices)
    assert [h["version"] for h in meta["history"]] == [first] and meta["version"] != first
    saved = sorted(p.name for p in Path(settings.data_dir, "reviews", "red").iterdir())
    assert saved == sorted(f"video{det.video_id}-frame{i}.jpg" for i in indices)
    get_settings.cache_clear()
