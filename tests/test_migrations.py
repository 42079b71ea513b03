"""The Alembic migrations build exactly the models' schema, on SQLite and on
Postgres; databases from before migrations are adopted; several processes
may open a fresh database at once."""

from __future__ import annotations

import subprocess
import sys

import pytest
from sqlalchemy import create_engine, inspect, text

from tests.pipeline_support import postgres_url  # noqa: F401  (fixture)
from workers.storage.db import forget_engines, get_engine, head_revision, normalise_url
from workers.storage.models import Base


def _differences(engine) -> list:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn), Base.metadata)


def _revision(engine) -> str | None:
    with engine.connect() as conn:
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def _check_fresh_database(url: str) -> None:
    engine = get_engine(url)
    assert _revision(engine) == head_revision()
    assert _differences(engine) == []
    assert set(inspect(engine).get_table_names()) >= {
        "videos", "detections", "frame_scores", "stage_timings", "alerts", "watches"
    }
    forget_engines(close=True)
    assert _revision(get_engine(url)) == head_revision()  # second open: nothing to do


def _database_at(url: str, revision: str):
    """A database at an older ``revision`` (made at head, then downgraded), to upgrade by reopening."""
    from alembic import command

    from workers.storage.db import _alembic_config

    forget_engines(close=True)
    engine = get_engine(url)
    with engine.begin() as conn:
        command.downgrade(_alembic_config(conn), revision)
    return engine


_OLD_VIDEO = "INSERT INTO videos (id, source, meta, status, created_at, updated_at) VALUES (1, 'a.mp4', '{}', 'done', '2024-01-01', '2024-01-01')"


def test_sqlite_gets_the_models_schema(tmp_path):
    _check_fresh_database(f"sqlite:///{tmp_path / 'new.db'}")
    forget_engines(close=True)


def test_postgres_gets_the_models_schema(postgres_url):  # noqa: F811
    _check_fresh_database(postgres_url)


def test_database_created_before_migrations_is_adopted(tmp_path):
    from alembic import command

    from workers.storage.db import _alembic_config

    url = f"sqlite:///{tmp_path / 'old.db'}"
    legacy = create_engine(url)
    # The first release made its tables with create_all: the schema of revision 0001, unversioned.
    with legacy.begin() as conn:
        command.upgrade(_alembic_config(conn), "0001")
        conn.execute(text("DROP TABLE alembic_version"))
    with legacy.begin() as conn:
        conn.execute(text("INSERT INTO videos (source, meta, status, created_at, updated_at) VALUES ('a.mp4', '{}', 'done', '2024-01-01', '2024-01-01')"))
    legacy.dispose()
    engine = get_engine(url)
    assert _revision(engine) == head_revision()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT source FROM videos")).scalar() == "a.mp4"
    assert _differences(engine) == []
    forget_engines(close=True)


def test_upgrade_from_0001_keeps_videos_and_their_verdicts(tmp_path):
    """0002 adds a foreign key to ``videos`` without copying the table (which
    would cascade into detections on SQLite)."""
    url = f"sqlite:///{tmp_path / 'v1.db'}"
    with _database_at(url, "0001").begin() as conn:
        conn.execute(text(_OLD_VIDEO))
        conn.execute(text("INSERT INTO detections (video_id, target_name, target_version, target_kind, verdict, frames, scored_frames, positive_frames, positive_timestamps, threshold, created_at) VALUES (1, 't', 'v', 'classifier', 'positive', 3, 3, 3, '[]', 0.5, '2024-01-01')"))
    forget_engines(close=True)
    engine = get_engine(url)
    assert _revision(engine) == head_revision()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM detections")).scalar() == 1
    assert _differences(engine) == []
    forget_engines(close=True)


def test_processes_opening_a_fresh_postgres_database_together(postgres_url):  # noqa: F811
    code = "import sys; from workers.storage.db import get_engine; get_engine(sys.argv[1])"
    procs = [subprocess.Popen([sys.executable, "-c", code, postgres_url], stderr=subprocess.PIPE, text=True) for _ in range(4)]
    errors = [p.communicate(timeout=60)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, errors
    engine = create_engine(normalise_url(postgres_url))
    assert _revision(engine) == head_revision()
    engine.dispose()


def test_migrations_ship_with_the_package():
    from workers.storage.db import MIGRATIONS_DIR

    assert (MIGRATIONS_DIR / "env.py").is_file() and list((MIGRATIONS_DIR / "versions").glob("0001_*.py"))


@pytest.mark.parametrize("url,expected", [
    ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
    ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
    ("sqlite:///x.db", "sqlite:///x.db"),
])
def test_postgres_urls_use_psycopg3(url, expected):
    assert normalise_url(url) == expected


def test_upgrade_to_0007_keeps_the_newest_timing_of_each_stage(tmp_path):
    """Databases from before 0007 may hold two rows for one stage (two deliveries of a task)."""
    url = f"sqlite:///{tmp_path / 'v6.db'}"
    with _database_at(url, "0006").begin() as conn:
        conn.execute(text(_OLD_VIDEO))
        for worker in ("first", "second"):
            conn.execute(text(
                "INSERT INTO stage_timings (video_id, stage, worker, started_at, finished_at) "
                "VALUES (1, 'verdict', :w, '2024-01-01', '2024-01-01')"), {"w": worker})
        conn.execute(text("INSERT INTO stage_timings (video_id, stage, worker, started_at, finished_at) VALUES (1, 'score', 'x', '2024-01-01', '2024-01-01')"))
    forget_engines(close=True)
    engine = get_engine(url)
    assert _revision(engine) == head_revision()
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT stage, worker FROM stage_timings ORDER BY stage")).all()
    assert [tuple(r) for r in rows] == [("score", "x"), ("verdict", "second")]
    assert _differences(engine) == []
    forget_engines(close=True)


_META = {
    "targets": ["red", "logo"], "watch_id": 3, "video_key": "videos/j/source.mp4", "frames_linked": True,
    "repost_wait_since": 1700000000.5, "requeues": 2,
    "ref": {"platform": "tiktok", "platform_id": "7", "url": "https://www.tiktok.com/@a/video/7", "counts": {"views": 9}},
    "decoding": {"promised_frames": 60, "decoded_frames": 20, "broken": False, "partial": True},
}


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_upgrade_to_0008_moves_the_video_state_out_of_meta_and_back(database, tmp_path, request):
    """0008 makes each key of ``videos.meta`` a column, keeps the rows' values (on SQLite without
    copying ``videos``, which would cascade into detections), and its downgrade puts them back."""
    import json
    from datetime import datetime, timezone

    from alembic import command

    from workers.storage.db import _alembic_config, session_scope
    from workers.storage.models import Video

    url = request.getfixturevalue("postgres_url") if database == "postgres" else f"sqlite:///{tmp_path / 'v7.db'}"
    with _database_at(url, "0007").begin() as conn:
        conn.execute(text(_OLD_VIDEO))
        conn.execute(
            text("INSERT INTO videos (id, source, meta, status, created_at, updated_at) VALUES (2, 'b.mp4', :m, 'scoring', '2024-01-01', '2024-01-01')"),
            {"m": json.dumps(_META)},
        )
        conn.execute(text("INSERT INTO detections (video_id, target_name, target_version, target_kind, verdict, frames, scored_frames, positive_frames, positive_timestamps, threshold, created_at) VALUES (2, 't', 'v', 'classifier', 'positive', 3, 3, 3, '[]', 0.5, '2024-01-01')"))
    forget_engines(close=True)
    engine = get_engine(url)
    assert _revision(engine) == head_revision() and _differences(engine) == []
    with session_scope(url) as s:
        empty, full = s.get(Video, 1), s.get(Video, 2)
        assert (empty.targets, empty.watch_id, empty.ref, empty.video_key, empty.frames_linked, empty.requeues, empty.partial) == (
            [], None, None, None, False, 0, False)
        assert (full.targets, full.watch_id, full.ref, full.video_key, full.frames_linked, full.requeues) == (
            ["red", "logo"], 3, _META["ref"], "videos/j/source.mp4", True, 2)
        assert full.repost_wait_since.replace(tzinfo=timezone.utc) == datetime.fromtimestamp(1700000000.5, timezone.utc)
        assert (full.promised_frames, full.decoded_frames, full.partial) == (60, 20, True)
        assert len(full.detections) == 1
    with engine.begin() as conn:
        command.downgrade(_alembic_config(conn), "0007")
    with engine.connect() as conn:
        metas = dict(conn.execute(text("SELECT id, meta FROM videos ORDER BY id")).all())
    metas = {k: json.loads(v) if isinstance(v, str) else v for k, v in metas.items()}
    assert metas[1] == {"targets": []}
    assert metas[2] == {**_META, "decoding": {"promised_frames": 60, "decoded_frames": 20, "partial": True}}
    forget_engines(close=True)


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_upgrade_to_0011_keys_each_source_once(database, tmp_path, request):
    """0011 gives each stored source a unique ``source_key`` (older duplicates: NULL, kept),
    after which a second row of the same source is refused; its downgrade drops the key."""
    import hashlib

    from alembic import command
    from sqlalchemy.exc import IntegrityError

    from workers.storage.db import _alembic_config

    url = request.getfixturevalue("postgres_url") if database == "postgres" else f"sqlite:///{tmp_path / 'v10.db'}"
    insert = "INSERT INTO videos (id, source, status, created_at, updated_at) VALUES (:id, :s, 'done', '2024-01-01', '2024-01-01')"
    with _database_at(url, "0010").begin() as conn:
        for video_id, source in ((1, "/data/x.mp4"), (2, "/data/x.mp4"), (3, "https://example.org/v")):
            conn.execute(text(insert), {"id": video_id, "s": source})
    forget_engines(close=True)
    engine = get_engine(url)
    assert _revision(engine) == head_revision() and _differences(engine) == []
    with engine.connect() as conn:
        keys = dict(conn.execute(text("SELECT id, source_key FROM videos ORDER BY id")).all())
    assert keys == {1: hashlib.sha256(b"/data/x.mp4").hexdigest(), 2: None, 3: hashlib.sha256(b"https://example.org/v").hexdigest()}
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text("INSERT INTO videos (id, source, source_key, status, created_at, updated_at) "
                          "VALUES (4, '/data/x.mp4', :k, 'queued', '2024-01-01', '2024-01-01')"), {"k": keys[1]})
    with engine.begin() as conn:
        command.downgrade(_alembic_config(conn), "0010")
    assert "source_key" not in {c["name"] for c in inspect(engine).get_columns("videos")}
    forget_engines(close=True)
