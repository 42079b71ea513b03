"""The review app without a browser: login, CSRF, media by database key only,
escaping, reviews and what they change (exports, alerts), binding safety."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from tests.web_support import CSRF, HOSTILE_CAPTION, seed_results, web_settings
from workers.storage.db import session_scope
from workers.storage.models import AlertRow, AlertStatus, Review
from workers.web.app import SESSION_COOKIE, create_app

PASSWORD = "correct horse"


@pytest.fixture()
def web_env(tt_env, monkeypatch):
    settings = web_settings(monkeypatch, PASSWORD)
    return settings, seed_results(settings)


def client_for(settings) -> TestClient:
    return TestClient(create_app(settings), follow_redirects=False)


def login(client: TestClient) -> str:
    page = client.get("/login")
    token = CSRF.search(page.text).group(1)
    reply = client.post("/login", data={"csrf": token, "password": PASSWORD, "next": "/"})
    assert reply.status_code == 303 and reply.headers["location"] == "/"
    return CSRF.search(client.get("/").text).group(1)  # a fresh token after login


def test_every_page_needs_login(web_env):
    settings, seeded = web_env
    client = client_for(settings)
    for path in ("/", f"/videos/{seeded.video_id}", "/targets", "/pipeline", "/?target=logo"):
        reply = client.get(path)
        assert reply.status_code == 303 and reply.headers["location"].startswith("/login?next="), path
    assert client.get(f"/media/{seeded.evidence_key}").status_code == 401
    assert client.get("/login").status_code == 200
    # A POST with a valid token but no login is refused too.
    token = CSRF.search(client.get("/login").text).group(1)
    reply = client.post(f"/detections/{seeded.detection_id}/review", data={"csrf": token, "verdict": "rejected"})
    assert reply.status_code == 401


def test_wrong_password_and_session_cookie(web_env):
    settings, _ = web_env
    client = client_for(settings)
    token = CSRF.search(client.get("/login").text).group(1)
    assert client.post("/login", data={"csrf": token, "password": "nope"}).status_code == 401
    assert client.get("/").status_code == 303
    token = CSRF.search(client.get("/login").text).group(1)
    reply = client.post("/login", data={"csrf": token, "password": PASSWORD, "next": "https://evil.example/"})
    assert reply.status_code == 303 and reply.headers["location"] == "/"  # no open redirect
    cookie = reply.headers["set-cookie"].lower()
    assert cookie.startswith(f"{SESSION_COOKIE}=") and "httponly" in cookie and "samesite=lax" in cookie
    assert client.get("/").status_code == 200


def test_post_without_csrf_is_refused(web_env):
    settings, seeded = web_env
    client = client_for(settings)
    assert client.post("/login", data={"password": PASSWORD}).status_code == 403
    login(client)
    for path, data in (
        (f"/detections/{seeded.detection_id}/review", {"verdict": "rejected"}),
        (f"/detections/{seeded.detection_id}/frames", {"verdict": "not_target", "frame": "60"}),
        ("/targets/logo/rescan", {}),
        ("/logout", {}),
    ):
        assert client.post(path, data=data).status_code == 403, path
        assert client.post(path, data={**data, "csrf": "forged"}).status_code == 403, path
    with session_scope(settings.resolved_database_url) as s:
        assert s.scalars(select(Review)).all() == []


def test_media_only_by_database_keys(web_env):
    settings, seeded = web_env
    client = client_for(settings)
    login(client)
    reply = client.get(f"/media/{seeded.evidence_key}")
    assert reply.status_code == 200 and reply.headers["content-type"] == "image/jpeg"
    assert reply.content[:3] == b"\xff\xd8\xff"
    (settings.media_dir / "frames").mkdir(parents=True, exist_ok=True)
    (settings.media_dir / "frames" / "1.npz").write_bytes(b"in the store, not in the database")
    for path in (
        "/media/frames/1.npz",
        "/media/../../../etc/passwd",
        "/media/evidence/../frames/1.npz",
        "/media/evidence/..%2F..%2Fframes%2F1.npz",
        "/media/%2Fetc%2Fpasswd",
        "/media//etc/passwd",
        f"/media/{settings.media_dir}/frames/1.npz",
        "/media/%2e%2e/%2e%2e/etc/passwd",
    ):
        assert client.get(path).status_code == 404, path


def test_scraped_text_is_escaped(web_env):
    settings, seeded = web_env
    client = client_for(settings)
    login(client)
    for path in ("/", f"/videos/{seeded.video_id}"):
        page = client.get(path)
        assert page.status_code == 200
        assert "<script>window" not in page.text and "<img src=x" not in page.text and "<b onmouseover" not in page.text
        assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in page.text
        assert "script-src 'none'" in page.headers["content-security-policy"]
    assert HOSTILE_CAPTION not in client.get("/").text


def test_video_page_timeline_has_a_point_per_frame(web_env):
    settings, seeded = web_env
    client = client_for(settings)
    login(client)
    page = client.get(f"/videos/{seeded.video_id}").text
    assert page.count('<circle class="frame') == seeded.frames
    assert page.count('<circle class="frame positive') == 4  # 0.7, 0.8, 0.9, 0.75
    assert page.count('class="frame reused"') + page.count('class="frame positive reused"') == 1
    assert 'class="threshold"' in page
    assert page.count("<img src=\"/media/evidence/") == 3  # evidence_frames kept per detection


def test_reject_stores_a_review_cancels_alerts_and_shows_in_exports(web_env):
    from workers.pipeline.alerting import alert_video
    from workers.pipeline.stages import StageContext

    settings, seeded = web_env
    client = client_for(settings)
    token = login(client)
    with session_scope(settings.resolved_database_url) as s:  # an alert waiting in a cooldown
        s.add(AlertRow(video_id=seeded.video_id, target_name="logo", detection_id=seeded.detection_id, status=AlertStatus.HELD))
    reply = client.post(
        f"/detections/{seeded.detection_id}/review",
        data={"csrf": token, "verdict": "rejected", "back": "https://evil.example/"},
    )
    assert reply.status_code == 303 and reply.headers["location"] == "/"
    with session_scope(settings.resolved_database_url) as s:
        (review,) = s.scalars(select(Review)).all()
        assert (review.detection_id, review.verdict, review.frame_index, review.reviewer) == (
            seeded.detection_id, "rejected", None, settings.web_user,
        )
        assert s.scalars(select(AlertRow)).one().status == "cancelled"
        s.execute(AlertRow.__table__.delete())
    assert alert_video(StageContext.from_settings(settings), seeded.video_id) is True
    with session_scope(settings.resolved_database_url) as s:
        assert s.scalars(select(AlertRow)).all() == []  # rejected: no alert raised
    assert "review-rejected" in client.get("/?review=rejected").text
    assert "review-rejected" not in client.get("/?review=unreviewed").text
    out = subprocess.run(
        [sys.executable, "-m", "workers.cli.main", "results", "--format", "csv"], capture_output=True, text=True, check=True
    ).stdout
    header, row = out.splitlines()[:2]
    assert header.split(",")[-3:] == ["review", "review_disagrees", "reviewer"]
    assert row.endswith(f",rejected,False,{settings.web_user}")


def test_frame_marks_are_stored(web_env):
    settings, seeded = web_env
    client = client_for(settings)
    token = login(client)
    reply = client.post(
        f"/detections/{seeded.detection_id}/frames", data={"csrf": token, "verdict": "not_target", "frame": ["60", "90"]}
    )
    assert reply.status_code == 303
    with session_scope(settings.resolved_database_url) as s:
        marks = sorted((r.frame_index, r.verdict) for r in s.scalars(select(Review)))
    assert marks == [(60, "not_target"), (90, "not_target")]
    assert client.post(
        f"/detections/{seeded.detection_id}/frames", data={"csrf": token, "verdict": "not_target", "frame": "61"}
    ).status_code == 400  # not a scored frame


def test_pages_render(web_env):
    settings, _ = web_env
    client = client_for(settings)
    login(client)
    page = client.get("/pipeline").text
    assert "Videos per status" in page and "Health" in page
    assert re.search(r'<tr class="ok"><td>ok</td><th>database</th><td>answers</td></tr>', page), page
    assert re.search(r'<tr class="ok"><td>ok</td><th>progress</th><td>0 waiting; last hour', page), page
    assert page.count('<svg xmlns="http://www.w3.org/2000/svg" class="chart"') == 3  # finished per hour, backlog, stage times
    assert client.get("/targets").status_code == 200
    assert client.get("/static/style.css").status_code == 200
    assert client.get("/videos/999").status_code == 404


def test_no_login_needed_on_loopback_without_password(tt_env, monkeypatch):
    settings = web_settings(monkeypatch, None)
    seed_results(settings)
    client = client_for(settings)
    assert client.get("/").status_code == 200
    assert client.post("/detections/1/review", data={"verdict": "confirmed"}).status_code == 403  # CSRF still


def test_binding_beyond_loopback_needs_a_password(tt_env, monkeypatch):
    monkeypatch.delenv("TT_WEB_PASSWORD", raising=False)
    reply = subprocess.run(
        [sys.executable, "-m", "workers.cli.main", "web", "--host", "0.0.0.0"], capture_output=True, text=True, timeout=60
    )
    assert reply.returncode == 2
    assert len(reply.stderr.strip().splitlines()) == 1 and "TT_WEB_PASSWORD" in reply.stderr


def test_compose_web_service_is_local_and_needs_a_password():
    import yaml

    from tests.conftest import ROOT

    web = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["web"]
    assert web["command"][:2] == ["tiktok-tracker", "web"]
    (port,) = web["ports"]
    assert port.startswith("${WEB_BIND_ADDRESS:-127.0.0.1}:")
    assert "TT_WEB_PASSWORD" in web["environment"] and "media:/data" in web["volumes"]


def test_inbox_filters_by_watch_in_the_database(web_env):
    """A watch's detections are found however many newer ones other videos have."""
    from workers.review.service import InboxFilter, inbox
    from workers.storage.models import Video

    settings, seeded = web_env
    with session_scope(settings.resolved_database_url) as s:
        s.get(Video, seeded.video_id).watch_id = 4
    for n in range(3):  # newer detections of videos no watch queued
        seed_results(settings, source=f"https://www.tiktok.com/@other/video/{n + 2}")
    with session_scope(settings.resolved_database_url) as s:
        assert [i.video.id for i in inbox(s, InboxFilter(watch=4, limit=1))] == [seeded.video_id]
        assert inbox(s, InboxFilter(watch=5)) == []
        assert len(inbox(s, InboxFilter(limit=10))) == 4


def test_the_inbox_shows_negatives_only_when_asked_and_says_what_a_review_of_one_means(web_env):
    from workers.storage.models import Detection

    settings, seeded = web_env
    other = seed_results(settings, source="https://www.tiktok.com/@other/video/9")
    with session_scope(settings.resolved_database_url) as s:
        s.get(Detection, other.detection_id).verdict = "negative"
    client = client_for(settings)
    login(client)
    default = client.get("/").text
    assert f'id="detection-{seeded.detection_id}"' in default and f'id="detection-{other.detection_id}"' not in default
    assert "Confirm: the target is there" in default and "Reject: not the target" in default
    both = client.get("/?verdict=").text  # the filter's "any"
    assert f'id="detection-{other.detection_id}"' in both and f'id="detection-{seeded.detection_id}"' in both
    negatives = client.get("/?verdict=negative").text
    assert f'id="detection-{seeded.detection_id}"' not in negatives
    assert "Confirm: no target here" in negatives and "Reject: the target was missed" in negatives


def test_the_inbox_pages_by_keyset_and_its_pages_hold_while_detections_arrive(web_env):
    """Older and newer pages start at a detection, not at an offset: a detection that arrives
    while someone reads page 2 does not shift what "older" shows (issue 22, point 4)."""
    from datetime import timedelta

    from workers.review.service import Cursor, InboxFilter, inbox_page
    from workers.storage.models import Detection

    settings, first = web_env
    ids = [first.detection_id] + [seed_results(settings, source=f"https://www.tiktok.com/@a/video/{n}").detection_id for n in range(6)]
    url = settings.resolved_database_url
    with session_scope(url) as s:  # one second apart, in id order (seeding is faster than the clock)
        base = s.get(Detection, ids[0]).created_at
        for n, detection_id in enumerate(ids):
            s.get(Detection, detection_id).created_at = base + timedelta(seconds=n)

    def page(**cursor):
        with session_scope(url) as s:
            found = inbox_page(s, InboxFilter(limit=3, **cursor))
            return [i.detection.id for i in found.items], found.older, found.newer

    newest, older, newer = page()
    assert newest == ids[:-4:-1] and newer is None
    late = seed_results(settings, source="https://www.tiktok.com/@a/video/late").detection_id  # arrives meanwhile
    with session_scope(url) as s:
        s.get(Detection, late).created_at = base + timedelta(seconds=60)
    second, older2, newer2 = page(older_than=older)
    assert second == ids[3:0:-1]  # the next three, whatever arrived above
    last, older3, _ = page(older_than=older2)
    assert last == [ids[0]] and older3 is None
    back, _, newer_again = page(newer_than=newer2)
    assert back == newest and newer_again is not None  # and the late one is newer than that page
    assert page(newer_than=newer_again)[0] == [late]
    assert Cursor.parse(older.token) == older

    client = client_for(settings)
    login(client)
    html = client.get(f"/?verdict=positive&older={older.token}").text
    assert f'id="detection-{ids[3]}"' in html and f'id="detection-{ids[6]}"' not in html
    assert 'rel="first"' in html and "verdict=positive" in html.split('rel="first"')[0].rsplit("<a", 1)[1]
    assert "not a page of the inbox" in client.get("/?older=12-x").text


def test_a_review_filtered_inbox_page_that_found_none_still_leads_further(web_env):
    """The review state is filtered after reading (50 per shown row): a page that read only
    unreviewed detections links on from the last one it read, not to nothing."""
    from datetime import timedelta

    from workers.review.service import Cursor, InboxFilter, inbox_page
    from workers.storage import reviews
    from workers.storage.models import Detection, Video

    settings, seeded = web_env
    url = settings.resolved_database_url
    with session_scope(url) as s:
        oldest = s.get(Detection, seeded.detection_id)
        reviews.add_review(s, oldest, "confirmed", "reporter")
        for n in range(60):  # newer, unreviewed
            video = Video(source=f"https://www.tiktok.com/@b/video/{n}", status="done")
            s.add(video)
            s.flush()
            s.add(Detection(video_id=video.id, target_name="logo", target_version="v1", target_kind="classifier",
                            verdict="positive", frames=3, scored_frames=3, positive_frames=1, positive_timestamps=[0.0],
                            threshold=0.5, created_at=oldest.created_at + timedelta(seconds=n + 1)))
    with session_scope(url) as s:
        first = inbox_page(s, InboxFilter(review="confirmed", limit=1))
        assert first.items == [] and first.older is not None
        second = inbox_page(s, InboxFilter(review="confirmed", limit=1, older_than=first.older))
        assert [i.detection.id for i in second.items] == [seeded.detection_id]
    with pytest.raises(Exception, match="not a page of the inbox"):
        Cursor.parse("999999999999999999-1")
