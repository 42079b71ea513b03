"""The review app in a real headless Chromium: thumbnails decode, the
timeline has a point per frame, reject stores a review, hostile captions
run nothing (no dialog, no script, no handler)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.browser_support import browser, log_in, screenshot, serving
from tests.web_support import seed_results, web_settings
from workers.storage.db import session_scope
from workers.storage.models import Review

PASSWORD = "browser pass"


@pytest.fixture()
def served(tt_env, monkeypatch):
    settings = web_settings(monkeypatch, PASSWORD)
    seeded = seed_results(settings)
    with serving(settings) as base:
        yield settings, seeded, base


def test_review_in_a_browser(served, tmp_path):
    settings, seeded, base = served
    with browser() as chromium:
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
        (review,) = s.scalars(select(Review)).all()
        assert (review.detection_id, review.verdict, review.reviewer) == (seeded.detection_id, "rejected", settings.web_user)
