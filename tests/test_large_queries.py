"""Queries over more rows than a statement may bind parameters (issue 22): exports and
status of a database with a million detections ask for the reviews of every one of them,
which Postgres (65,535 parameters) and SQLite (32,766 in its default build) refuse in one IN (...) list. And a
query that fails on a database that answers is reported as the query's fault, not as a
wrong ``TT_DATABASE_URL``."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import insert, select, text

from tests.pipeline_support import postgres_url  # noqa: F401  (fixture)
from workers.services.database import DatabaseUnavailable, database_errors
from workers.storage import reviews
from workers.storage.db import session_scope
from workers.storage.models import Detection, Video, VideoStatus

ROWS = 66_000  # above both drivers' limits


def seed_detections(db_url: str) -> list[int]:
    """ROWS detections of one video (one per target name); their ids."""
    with session_scope(db_url) as s:
        video = Video(source="/data/v.mp4", job_id=str(uuid.uuid4()), status=VideoStatus.DONE)
        s.add(video)
        s.flush()
        row = dict(video_id=video.id, target_version="v1", target_kind="classifier", verdict="positive", frames=3,
                   scored_frames=3, positive_frames=1, positive_timestamps=[0.0], threshold=0.5)
        s.execute(insert(Detection), [{**row, "target_name": f"t{i}"} for i in range(ROWS)])
    with session_scope(db_url) as s:
        return list(s.scalars(select(Detection.id).order_by(Detection.id)))


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'results.db'}"
    return request.getfixturevalue("postgres_url")


def test_reviews_of_more_detections_than_one_statement_may_bind(db_url):
    ids = seed_detections(db_url)
    with session_scope(db_url) as s:
        for detection_id, verdict in ((ids[0], "confirmed"), (ids[-1], "rejected"), (ids[-1], "confirmed")):
            reviews.add_review(s, s.get(Detection, detection_id), verdict, "reporter")
    with session_scope(db_url) as s:
        held = reviews.states(s, ids)
    assert len(held) == ROWS
    assert held[ids[0]] == "confirmed" and held[ids[-1]] == "confirmed"  # the newest review holds
    assert sum(v == "unreviewed" for v in held.values()) == ROWS - 2


def test_a_failing_query_on_a_database_that_answers_is_not_blamed_on_its_url(tmp_path):
    url = f"sqlite:///{tmp_path / 'results.db'}"
    with pytest.raises(DatabaseUnavailable) as caught, database_errors(url), session_scope(url) as s:
        s.execute(text("SELECT no_such_column FROM videos"))
    assert "a query failed: no such column: no_such_column" in str(caught.value)
    assert "check TT_DATABASE_URL" not in str(caught.value)


def test_a_file_that_is_no_database_is_still_blamed_on_the_url(tmp_path):
    """The probe reads the schema, read-only: a mistyped path is not created, and a file that
    is no database does not pass for one that answers."""
    from workers.services.database import database_answers

    not_a_database = tmp_path / "notes.txt"
    not_a_database.write_text("x" * 4096)
    assert not database_answers(f"sqlite:///{not_a_database}")
    assert not database_answers(f"sqlite:///{tmp_path / 'typo.db'}") and not (tmp_path / "typo.db").exists()
    answering = tmp_path / "results.db"
    with session_scope(f"sqlite:///{answering}"):
        pass
    assert database_answers(f"sqlite:///{answering}")
