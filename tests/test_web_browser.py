"""The review app in a real headless Chromium: thumbnails decode, the
timeline has a point per frame, reject stores a review, hostile captions
run nothing (no dialog, no script, no handler); and each role's allowed and
refused actions. One server and one browser for the module (each test has its
own browser context, so its own cookies)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from tests.browser_support import browser, log_in, screenshot, serving
from tests.web_support import CSRF, seed_results, web_settings
from workers.storage import accounts
from workers.storage.db import session_scope
from workers.storage.models import Review
from workers.targets.bundle import META

PASSWORD = "browser pass"
ACCOUNTS = {"vera": ("viewer", "viewer pass 1"), "rita": ("reviewer", "reviewer pass 2"), "ada": ("admin", "admin pass 33")}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The seeded app (TT_WEB_PASSWORD plus an account per role, a saved target) at a loopback URL."""
    from workers.settings import get_settings

    root = tmp_path_factory.mktemp("browser")
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("TT_DATA_DIR", str(root / "data"))
        monkeypatch.setenv("TT_MODELS_DIR", str(root / "models"))
        monkeypatch.setenv("TT_VGG16_WEIGHTS", "random")
        monkeypatch.delenv("TT_DATABASE_URL", raising=False)
        settings = web_settings(monkeypatch, PASSWORD)
        seeded = seed_results(settings)
        with session_scope(settings.resolved_database_url) as s:
            for name, (role, password) in ACCOUNTS.items():
                accounts.add(s, name, role, password)
        (root / "models" / "logo").mkdir(parents=True)
        (root / "models" / "logo" / META).write_text(json.dumps({"name": "logo", "kind": "classifier", "version": "v1", "threshold": 0.5}))
        with serving(settings) as base:
            yield settings, seeded, base
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def chromium():
    with browser() as launched:
        yield launched


def posted(page, base: str, path: str, data: dict):
    """A crafted POST with the page's session cookie and CSRF token (what a hidden button would send)."""
    token = CSRF.search(page.content()).group(1)
    return page.request.post(f"{base}{path}", form={"csrf": token, **data}, max_redirects=0)


def test_review_in_a_browser(served, chromium, tmp_path):
    settings, seeded, base = served
    page = chromium.new_page(viewport={"width": 1100, "height": 900})
    dialogs, errors = [], []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("pageerror", lambda e: errors.append(str(e)))
    log_in(page, base, PASSWORD)

    # Inbox: the best frame's thumbnail decodes.
    thumb = page.locator(f"#detection-{seeded.detection_id} img")
    thumb.wait_for()
    page.wait_for_function("img => img.complete", arg=thumb.element_handle())
    assert thumb.evaluate("img => img.naturalWidth") > 0
    assert page.locator(".caption").first.inner_text().startswith("<script>")
    screenshot(page, "inbox.png", tmp_path)  # the README's (generated data, not the seed videos)

    # Video page: one point per sampled frame, evidence strip decodes.
    page.goto(f"{base}/videos/{seeded.video_id}")
    assert page.locator("svg.timeline circle.frame").count() == seeded.frames
    assert page.locator("svg.timeline circle.frame.positive").count() == 4
    for img in page.locator(".strip img").all():
        assert img.evaluate("img => img.complete && img.naturalWidth") > 0
    screenshot(page, "video.png", tmp_path)

    # Nothing scraped ran: no dialog, no script error, no handler fired.
    page.hover(".author")
    assert page.evaluate("window.__pwned") is None
    assert dialogs == [] and errors == []

    # Reject through the button.
    page.click(f"#detection-{seeded.detection_id} button.reject")
    page.wait_for_load_state()
    assert page.locator(f"#detection-{seeded.detection_id} .state").first.inner_text() == "rejected"
    with session_scope(settings.resolved_database_url) as s:
        (review,) = s.scalars(select(Review).where(Review.reviewer == settings.web_user)).all()
        assert (review.detection_id, review.verdict, review.reviewer) == (seeded.detection_id, "rejected", settings.web_user)


def test_a_viewer_reads_but_does_not_review(served, chromium):
    settings, seeded, base = served
    page = chromium.new_page()
    log_in(page, base, ACCOUNTS["vera"][1], "vera")
    assert page.locator("header .role").inner_text() == "viewer"
    assert page.locator(f"#detection-{seeded.detection_id} .caption").count() == 1  # reads the inbox
    assert page.locator("form.review").count() == 0  # no review buttons
    page.goto(f"{base}/videos/{seeded.video_id}")
    assert page.locator("svg.timeline circle.frame").count() == seeded.frames and page.locator("form.frames button").count() == 0
    reply = posted(page, base, f"/detections/{seeded.detection_id}/review", {"verdict": "rejected"})
    assert reply.status == 403 and reply.text() == "forbidden: this needs the reviewer role"
    page.goto(f"{base}/targets")
    assert page.locator("#target-logo").count() == 1 and page.locator("form.rescan").count() == 0
    page.goto(f"{base}/watches")
    assert page.locator("h1").inner_text() == "Watches" and page.locator("form.add-watch").count() == 0
    with session_scope(settings.resolved_database_url) as s:
        assert s.scalars(select(Review).where(Review.reviewer == "vera")).all() == []
    page.context.close()


def test_a_reviewer_reviews_but_does_not_rescan(served, chromium):
    settings, seeded, base = served
    page = chromium.new_page()
    log_in(page, base, ACCOUNTS["rita"][1], "rita")
    page.goto(f"{base}/videos/{seeded.video_id}")
    page.click(f"#detection-{seeded.detection_id} form.review button.confirm")
    page.wait_for_load_state()
    page.check(f"#d{seeded.detection_id}-frame-60 input[type=checkbox]")
    page.click("form.frames button.reject")
    page.wait_for_load_state()
    page.goto(f"{base}/targets")
    assert page.locator("form.rescan").count() == 0
    reply = posted(page, base, "/targets/logo/rescan", {})
    assert reply.status == 403 and reply.text() == "forbidden: this needs the admin role"
    with session_scope(settings.resolved_database_url) as s:
        rows = s.scalars(select(Review).where(Review.reviewer == "rita").order_by(Review.id)).all()
        assert [(r.verdict, r.frame_index) for r in rows] == [("confirmed", None), ("not_target", 60)]
    page.context.close()


def test_an_admin_rescans_and_manages_watches(served, chromium):
    _, seeded, base = served
    page = chromium.new_page()
    log_in(page, base, ACCOUNTS["ada"][1], "ada")
    assert page.locator(f"#detection-{seeded.detection_id} form.review button").count() == 2
    page.goto(f"{base}/targets")
    assert page.locator("form.rescan button").count() == 1
    page.click("form.rescan button")  # allowed: the server tries (this stub target has no model to load)
    page.wait_for_load_state()
    assert "damaged bundle" in page.locator("main").inner_text()  # the rescan ran, and found no model
    page.goto(f"{base}/watches")
    page.fill("form.add-watch input[name=source]", "#newsroom")
    page.check("form.add-watch input[value=logo]")
    page.click("form.add-watch button")
    page.wait_for_url(f"{base}/watches")
    row = page.locator("table.watches tr[id^=watch-]")
    assert row.count() == 1 and "ada" in row.inner_text() and "logo" in row.inner_text()
    page.goto(f"{base}/account")
    assert page.locator("form.password").count() == 1
    page.context.close()
