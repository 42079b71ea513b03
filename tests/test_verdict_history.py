"""What a verdict shows, and that reviews survive reruns (issue 29, points 1-3 and 7).

Storage is driven directly (the verdict a worker would store, ``results.save_outcome``) and
the CLI in-process, so the module costs seconds: a person's review outlives a forced rerun
(same target version: the row is updated in place) and a rescan with a new version (the review
holds for the video and target, flagged when the new verdict disagrees); only the current
verdict of each (video, target) is listed unless ``--history``; a truncated real video file
reads "partial" in the table, CSV, JSON and ``status``; a face target's score is a distance.
"""

from __future__ import annotations

import csv
import io
import json
import uuid

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from tests.pipeline_support import postgres_url  # noqa: F401  (fixture)
from tests.test_cli_output import column_text
from tests.videos import truncated_copy, write_video
from workers.detect.scoring import TargetOutcome, TargetSpec
from workers.review.verdicts import shown
from workers.storage import results, reviews
from workers.storage.db import session_scope
from workers.storage.models import AlertRow, AlertStatus, Detection, Review, Video, VideoStatus
from workers.verdict import FrameScore, VerdictRule, verdict_for

TARGET = "trump06"


def outcome(version: str, scores: list[float], kind: str = "classifier", threshold: float = 0.5) -> TargetOutcome:
    """The outcome a score stage would hand the verdict stage: frame i at i seconds."""
    spec = TargetSpec(TARGET, kind, version, threshold, VerdictRule(min_fraction=0.0, min_frames=1))
    frames = [FrameScore(index=i, timestamp=float(i), score=s) for i, s in enumerate(scores)]
    return TargetOutcome(spec, frames, verdict_for(frames, threshold, spec.rule))


def add_video(db_url: str, source: str) -> int:
    with session_scope(db_url) as s:
        video = Video(source=source, job_id=str(uuid.uuid4()), status=VideoStatus.DONE)
        s.add(video)
        s.flush()
        return video.id


def store(db_url: str, video_id: int, result: TargetOutcome) -> int:
    """Store a verdict as a (re)run would; its detection id."""
    with session_scope(db_url) as s:
        return results.save_outcome(s, s.get(Video, video_id), result).id


def review(db_url: str, detection_id: int, verdict: str) -> None:
    with session_scope(db_url) as s:
        reviews.add_review(s, s.get(Detection, detection_id), verdict, "reporter")


def held(db_url: str, detection_id: int):
    with session_scope(db_url) as s:
        d = s.get(Detection, detection_id)
        return shown(d, reviews.holding(s, [d.id])[d.id])


@pytest.fixture()
def db(request, tt_env, monkeypatch):
    """The database the CLI reads: SQLite under ``tt_env``, or a fresh Postgres database."""
    from workers.settings import get_settings

    if request.param == "postgres":
        monkeypatch.setenv("TT_DATABASE_URL", request.getfixturevalue("postgres_url"))
    get_settings.cache_clear()
    yield get_settings().resolved_database_url
    get_settings.cache_clear()


def flat(text: str) -> str:
    return "".join(text.split())


VERDICT_COLUMN, SCORE_COLUMN = 2, 3  # of the results table


def cli(*args: str) -> str:
    from workers.cli.main import app

    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "80"})
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


@pytest.mark.parametrize("db", ["sqlite", "postgres"], indirect=True)
def test_a_review_survives_a_forced_rerun_and_a_rescan_and_shows_disagreement(db):
    video = add_video(db, "/videos/Trump.mp4")
    first = store(db, video, outcome("1", [0.9, 0.8, 0.1]))
    review(db, first, "confirmed")

    # enqueue --force: the same target version again. The row is updated in place, the review stays.
    again = store(db, video, outcome("1", [0.2, 0.1, 0.1]))
    assert again == first
    with session_scope(db) as s:
        assert [r.verdict for r in s.scalars(select(Review))] == ["confirmed"]
        assert [f.score for f in s.get(Detection, first).frame_scores] == [0.2, 0.1, 0.1]  # the new run's scores
    now = held(db, first)
    assert (now.label, now.review, now.disagrees) == ("negative", "confirmed", True)
    assert now.disagreement == "review disagrees: confirmed earlier, negative now"

    # rescan with a new target version: a new row; the review holds for the video and target.
    newer = store(db, video, outcome("2", [0.1, 0.1, 0.1]))
    assert newer != first
    now = held(db, newer)
    assert (now.label, now.review, now.disagrees, now.superseded) == ("negative", "confirmed", True, False)
    with session_scope(db) as s:
        assert [(d.id, old) for d, old in results.verdicts(s, video_id=video)] == [(newer, False)]
        assert [(d.id, old) for d, old in results.verdicts(s, video_id=video, history=True)] == [(newer, False), (first, True)]
        assert [r.detection_id for r in reviews.about(s, s.get(Detection, newer))] == [first]

    # A rejection keeps suppressing alerts across reruns and versions: still positive, flagged.
    other = add_video(db, "/videos/Biden.mp4")
    wrong = store(db, other, outcome("1", [0.9, 0.9, 0.9]))
    with session_scope(db) as s:
        s.add(AlertRow(video_id=other, target_name=TARGET, detection_id=wrong, status=AlertStatus.HELD))
    review(db, wrong, "rejected")
    assert held(db, wrong).disagrees is False  # rejecting this very positive: no disagreement yet
    still = store(db, other, outcome("2", [0.8, 0.9, 0.7]))
    with session_scope(db) as s:
        assert reviews.is_rejected(s, s.get(Detection, still))
        assert s.scalars(select(AlertRow.status)).all() == [reviews.CANCELLED]
    now = held(db, still)
    assert (now.label, now.review, now.disagrees) == ("positive", "rejected", True)

    # What the listings say (the CLI, on this database).
    rows = {r["video_id"]: r for r in json.loads(cli("results", "--format", "json"))}
    assert (rows[video]["target_version"], rows[video]["review"], rows[video]["review_disagrees"]) == ("2", "confirmed", True)
    assert (rows[other]["verdict"], rows[other]["review"], rows[other]["review_disagrees"]) == ("positive", "rejected", True)
    assert flat("review disagrees: confirmed earlier, negative now") in column_text(cli("results"), VERDICT_COLUMN)


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_only_the_current_verdict_is_listed_unless_history(db):
    biden = add_video(db, "/videos/Biden.mp4")
    old = store(db, biden, outcome("1", [0.9, 0.2]))  # the false positive
    new = store(db, biden, outcome("2", [0.1, 0.2]))  # after a correction and `rescan`

    listed = list(csv.DictReader(io.StringIO(cli("results", "--positive", "--target", TARGET, "--format", "csv"))))
    assert listed == []  # the superseded false positive is not listed
    (row,) = json.loads(cli("results", "--format", "json"))
    assert (row["detection_id"], row["verdict"], row["target_version"], row["current"]) == (new, "negative", "2", True)

    history = {r["detection_id"]: r for r in json.loads(cli("results", "--history", "--format", "json"))}
    assert set(history) == {old, new} and history[old]["current"] is False and history[new]["current"] is True
    both = list(csv.DictReader(io.StringIO(cli("results", "--history", "--format", "csv"))))
    assert sorted((r["target_version"], r["current"]) for r in both) == [("1", "False"), ("2", "True")]
    table = cli("results", "--history")
    assert "superseded(version1)" in column_text(table, VERDICT_COLUMN) and all(len(line) <= 80 for line in table.splitlines())
    assert "superseded" not in cli("results")

    status = cli("status", str(biden))
    assert f"{TARGET} (version 2): negative" in status and "version 1" not in status
    assert json.loads(cli("status", str(biden), "--json"))["detections"][0]["superseded"] == 1

    from workers.review.service import InboxFilter, inbox

    with session_scope(db) as s:
        assert [(i.detection.id, i.superseded) for i in inbox(s, InboxFilter())] == [(new, False)]
        assert [(i.detection.id, i.superseded) for i in inbox(s, InboxFilter(history=True))] == [(new, False), (old, True)]


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_a_truncated_video_reads_partial_in_table_csv_json_and_status(db, tmp_path):
    from workers.video.sampling import VideoReader

    whole = write_video(tmp_path / "whole.mp4", seconds=6, fps=10, color=(30, 30, 210))
    cut = truncated_copy(whole, tmp_path / "cut.mp4", keep=1 / 3)
    with VideoReader(cut) as reader:  # the real decoder: what the frames stage records
        info = reader.info
        kept = list(reader.frames(lambda i: i % 10 == 0, None))
        decoding = reader.decoding()
    assert decoding.partial
    video = add_video(db, str(cut))
    with session_scope(db) as s:
        results.record_sampling(s.get(Video, video), info, len(kept), decoding)
    store(db, video, outcome("1", [0.1] * len(kept)))
    note = f"partial: {decoding.decoded} of {decoding.promised} frames decoded"

    (row,) = json.loads(cli("results", "--format", "json"))
    assert (row["verdict"], row["verdict_label"], row["partial"]) == ("negative (partial)", "negative", True)
    assert (row["decoded_frames"], row["promised_frames"], row["partial_note"]) == (decoding.decoded, decoding.promised, note)
    (line,) = csv.DictReader(io.StringIO(cli("results", "--format", "csv")))
    assert (line["verdict"], line["partial"], line["partial_note"]) == ("negative (partial)", "True", note)
    table = cli("results")
    assert flat("negative (partial)" + note) in column_text(table, VERDICT_COLUMN) and all(len(x) <= 80 for x in table.splitlines())
    status = cli("status", str(video))
    assert "negative (partial)" in status and note in " ".join(status.split())
    assert json.loads(cli("status", str(video), "--json"))["detections"][0]["partial_note"] == note


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
def test_a_face_score_reads_as_a_match_distance_against_the_tolerance(db):
    from workers.alerts.message import Alert
    from workers.verdict_text import score_text

    video = add_video(db, "https://www.tiktok.com/@a/video/7300000000000000001")
    store(db, video, outcome("1", [0.69, 0.2], kind="face", threshold=0.6))  # tolerance 0.40
    (row,) = json.loads(cli("results", "--format", "json"))
    assert (row["score_kind"], row["confidence"], row["match_distance"], row["match_tolerance"]) == ("distance", None, 0.31, 0.4)
    assert row["score_text"] == "distance 0.31 (match at or below 0.40)"
    assert flat("distance 0.31 (match <= 0.40)") == column_text(cli("results"), SCORE_COLUMN)
    assert "distance 0.31 (match at or below 0.40)" in cli("status", str(video))
    alert = Alert(target=TARGET, video_url="https://x", confidence=0.69, match_tolerance=0.4)
    assert "Face match: distance 0.31 (match at or below 0.40)" in alert.text_lines()
    assert alert.to_json()["confidence"] is None and alert.to_json()["match_distance"] == 0.31
    assert score_text(0.87, 0.5, is_distance=False) == "score 0.870 (positive at 0.50 or more)"  # a classifier's stays a score
