"""Accounts and roles of the review app, over HTTP (no browser): each role's refusals on the
server, the failed-login limit (429 + Retry-After, the right password refused meanwhile),
session idle expiry and the password change that ends other sessions (on a clock the test
drives), the proxy's role header, and the `user` commands."""

from __future__ import annotations

import json
import logging

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient
from typer.testing import CliRunner

from tests.web_support import CSRF, seed_results, web_settings
from workers.accounts import LoginLimiter, hash_password, parse_limits, verify_password
from workers.cli.main import app as cli
from workers.errors import TrackerError
from workers.services.export import result_rows
from workers.storage import accounts, watches
from workers.storage.db import session_scope
from workers.storage.models import Account, Review
from workers.targets.bundle import META
from workers.web.app import create_app

PASSWORDS = {"vera": "viewer pass 1", "rita": "reviewer pass 2", "ada": "admin pass 33"}
ROLES = {"vera": "viewer", "rita": "reviewer", "ada": "admin"}


class Clock:
    """Seconds that move only when the test says."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def newsroom(tt_env, monkeypatch):
    """No shared password: three accounts, one per role, a seeded detection, a 3/minute limit."""
    monkeypatch.setenv("TT_WEB_FAILED_LOGIN_LIMIT", "3/minute,10/hour")
    monkeypatch.setenv("TT_WEB_SESSION_IDLE_SECONDS", "600")
    settings = web_settings(monkeypatch, None)
    seeded = seed_results(settings)
    with session_scope(settings.resolved_database_url) as s:
        for name, password in PASSWORDS.items():
            accounts.add(s, name, ROLES[name], password)
    clock = Clock()
    return settings, seeded, clock, create_app(settings, clock=clock)


def client(app, address: str = "10.0.0.1") -> TestClient:
    return TestClient(app, follow_redirects=False, client=(address, 40000))


def try_login(c: TestClient, name: str, password: str):
    token = CSRF.search(c.get("/login").text).group(1)
    return c.post("/login", data={"csrf": token, "name": name, "password": password, "next": "/"})


def logged_in(app, name: str, address: str = "10.0.0.1") -> tuple[TestClient, str]:
    c = client(app, address)
    assert try_login(c, name, PASSWORDS[name]).status_code == 303
    return c, CSRF.search(c.get("/").text).group(1)


def test_each_role_is_checked_on_the_server(newsroom):
    settings, seeded, _, app = newsroom
    review = f"/detections/{seeded.detection_id}/review"
    viewer, token = logged_in(app, "vera")
    assert viewer.get("/").status_code == 200 and 'action="' + review not in viewer.get("/").text  # no buttons
    reply = viewer.post(review, data={"csrf": token, "verdict": "rejected"})  # crafted, valid session and token
    assert reply.status_code == 403 and reply.text == "forbidden: this needs the reviewer role"
    reply = viewer.post(f"/detections/{seeded.detection_id}/frames", data={"csrf": token, "verdict": "not_target", "frame": "60"})
    assert reply.status_code == 403 and "reviewer" in reply.text

    reviewer, token = logged_in(app, "rita")
    assert reviewer.post(review, data={"csrf": token, "verdict": "rejected"}).status_code == 303
    reply = reviewer.post("/targets/logo/rescan", data={"csrf": token})
    assert reply.status_code == 403 and reply.text == "forbidden: this needs the admin role"
    with session_scope(settings.resolved_database_url) as s:
        (row,) = s.scalars(select(Review)).all()
        assert (row.verdict, row.reviewer) == ("rejected", "rita")  # the account, not a shared name
    (exported,) = result_rows(settings)
    assert (exported["review"], exported["reviewer"]) == ("rejected", "rita")
    assert "rita: rejected" in reviewer.get(f"/videos/{seeded.video_id}").text  # the review history

    admin, token = logged_in(app, "ada")
    assert admin.post("/targets/logo/train", data={"csrf": token}).status_code != 403


def test_failed_logins_are_limited_per_address_and_per_account(newsroom, caplog):
    _, _, clock, app = newsroom
    caplog.set_level(logging.INFO, logger="workers.web")
    guesser = client(app, "203.0.113.9")
    for guess in ("a", "b", "c"):
        assert try_login(guesser, "ada", f"wrong {guess}").status_code == 401
    reply = try_login(guesser, "ada", PASSWORDS["ada"])  # the right one, while limited
    assert reply.status_code == 429 and 1 <= int(reply.headers["retry-after"]) <= 60
    assert "/" not in reply.headers.get("location", "") and guesser.get("/").status_code == 303
    # Other names from that address are limited too; the account from another address as well.
    assert try_login(guesser, "vera", PASSWORDS["vera"]).status_code == 429
    assert try_login(client(app, "198.51.100.7"), "ada", PASSWORDS["ada"]).status_code == 429
    assert try_login(client(app, "198.51.100.7"), "rita", PASSWORDS["rita"]).status_code == 303
    assert any("login failed" in r.message and "203.0.113.9" in r.message for r in caplog.records)

    clock.now += int(reply.headers["retry-after"])
    assert try_login(guesser, "ada", PASSWORDS["ada"]).status_code == 303
    assert any(r.message.startswith("login: ada (admin) from 203.0.113.9") for r in caplog.records)


def test_sessions_end_when_idle_and_at_a_password_change(newsroom):
    settings, _, clock, app = newsroom
    tab, _ = logged_in(app, "rita")
    clock.now += 590
    assert tab.get("/").status_code == 200  # used: the idle time starts again
    clock.now += 590
    assert tab.get("/").status_code == 200
    clock.now += 601
    reply = tab.get("/")
    assert reply.status_code == 303 and reply.headers["location"].startswith("/login")

    here, token = logged_in(app, "rita")
    elsewhere, _ = logged_in(app, "rita", "10.0.0.2")
    form = {"csrf": token, "current": PASSWORDS["rita"], "new": "a new long one", "repeat": "a new long one"}
    assert here.post("/account/password", data={**form, "current": "wrong"}).status_code == 403
    assert here.post("/account/password", data=form).status_code == 303
    assert here.get("/").status_code == 200  # this session goes on
    assert elsewhere.get("/").status_code == 303  # every other one is over
    assert try_login(client(app, "10.0.0.3"), "rita", "a new long one").status_code == 303
    with session_scope(settings.resolved_database_url) as s:
        assert "a new long one" not in s.scalar(select(Account.password_hash).where(Account.name == "rita"))

    # Logout ends the session for every tab (one cookie); a removed account's session ends too.
    admin, token = logged_in(app, "ada")
    with session_scope(settings.resolved_database_url) as s:
        accounts.remove(s, "ada")
    assert admin.get("/").status_code == 303


def test_web_password_is_one_admin_and_the_proxy_sends_roles(tt_env, monkeypatch):
    settings = web_settings(monkeypatch, "shared secret 1")
    seeded = seed_results(settings)
    c = client(create_app(settings))
    token = CSRF.search(c.get("/login").text).group(1)
    assert c.post("/login", data={"csrf": token, "password": "shared secret 1"}).status_code == 303
    page = c.get("/").text
    assert '<span class="role">admin</span>' in page and "reviewer" in page  # web_user's name, the admin role

    monkeypatch.setenv("TT_WEB_AUTH_HEADER", "X-Forwarded-User")
    monkeypatch.setenv("TT_WEB_AUTH_ROLE_HEADER", "X-Forwarded-Role")
    monkeypatch.setenv("TT_WEB_DEFAULT_ROLE", "viewer")
    settings = web_settings(monkeypatch, None)
    proxied = client(create_app(settings))
    token = CSRF.search(proxied.get("/", headers={"X-Forwarded-User": "ivo"}).text).group(1)
    review = f"/detections/{seeded.detection_id}/review"
    for role, status in ((None, 403), ("reviewer", 303)):
        headers = {"X-Forwarded-User": "ivo", **({"X-Forwarded-Role": role} if role else {})}
        assert proxied.post(review, data={"csrf": token, "verdict": "confirmed"}, headers=headers).status_code == status


def test_user_commands(tt_env, monkeypatch):
    settings = web_settings(monkeypatch, None)
    runner = CliRunner()

    def user(*args, password: str | None = None):
        return runner.invoke(cli, ["user", *args], input=None if password is None else password + "\n", env={"COLUMNS": "120"})

    assert user("add", "ana", "--role", "reviewer", password="ana's long pass").exit_code == 0
    assert user("add", "bo", "--role", "viewer", password="bo's long pass").exit_code == 0
    assert isinstance(user("add", "ana", "--role", "admin", password="another pass").exception, TrackerError)
    assert isinstance(user("add", "cy", "--role", "boss", password="a long pass").exception, TrackerError)
    assert isinstance(user("add", "cy", "--role", "viewer", password="short").exception, TrackerError)
    listed = user("list", "--json")
    assert [line.split('"role": ')[1][1:-2].split('"')[0] for line in listed.stdout.splitlines()] == ["reviewer", "viewer"]
    assert "ana" in user("list").stdout
    assert user("passwd", "ana", "--role", "admin", password="ana's new pass").exit_code == 0
    with session_scope(settings.resolved_database_url) as s:
        ana = accounts.get(s, "ana")
        assert (ana.role, ana.session_epoch) == ("admin", 1)
        assert ana.password_hash.startswith("$argon2id$") and verify_password(ana.password_hash, "ana's new pass")
    assert user("remove", "bo").exit_code == 0
    assert isinstance(user("remove", "bo").exception, TrackerError)
    assert [a.name for a in _accounts(settings)] == ["ana"]


def _accounts(settings):
    with session_scope(settings.resolved_database_url) as s:
        return accounts.all_accounts(s)


def test_limiter_windows_and_password_hash():
    clock = Clock()
    limiter = LoginLimiter(parse_limits("2/minute, 3/hour"), clock)
    limiter.failed(["k"])
    assert limiter.retry_after(["k"]) == 0
    limiter.failed(["k"])
    assert limiter.retry_after(["k"]) == 60
    clock.now += 61
    assert limiter.retry_after(["k"]) == 0
    limiter.failed(["k"])  # the third in the hour
    assert limiter.retry_after(["k"]) == 3600 - 61
    for bad in ("5", "0/minute", "5/fortnight"):
        with pytest.raises(TrackerError):
            parse_limits(bad)
    assert parse_limits("") == ()
    stored = hash_password("a good password")
    assert verify_password(stored, "a good password") and not verify_password(stored, "a bad password")


def test_watches_are_managed_by_admins_and_record_who(newsroom):
    settings, _, _, app = newsroom
    (settings.models_dir / "logo").mkdir(parents=True)
    (settings.models_dir / "logo" / META).write_text(json.dumps({"name": "logo", "kind": "classifier", "version": "v1", "threshold": 0.5}))
    admin, token = logged_in(app, "ada")
    reply = admin.post("/watches", data={"csrf": token, "source": "@newsdesk", "every": "1h", "target": "logo"})
    assert reply.status_code == 303 and reply.headers["location"] == "/watches"
    with session_scope(settings.resolved_database_url) as s:
        (watch,) = watches.all_watches(s)
        assert (watch.targets, watch.every_seconds, watch.enabled, watch.changed_by) == (["logo"], 3600.0, True, "ada")
        watch_id = watch.id

    reviewer, token = logged_in(app, "rita")
    page = reviewer.get("/watches").text
    assert f'id="watch-{watch_id}"' in page and "tiktok:user:newsdesk" in page and 'class="switch"' not in page
    for path in (f"/watches/{watch_id}/enabled", f"/watches/{watch_id}/remove", "/watches"):
        reply = reviewer.post(path, data={"csrf": token, "enabled": "0", "source": "@other"})
        assert reply.status_code == 403 and reply.text == "forbidden: this needs the admin role", path

    assert (
        admin.post(
            f"/watches/{watch_id}/enabled", data={"csrf": CSRF.search(admin.get("/watches").text).group(1), "enabled": "0"}
        ).status_code
        == 303
    )
    with session_scope(settings.resolved_database_url) as s:
        watch = watches.get(s, watch_id)
        assert (watch.enabled, watch.changed_by) == (False, "ada")
    assert admin.post(f"/watches/{watch_id}/remove", data={"csrf": CSRF.search(admin.get("/watches").text).group(1)}).status_code == 303
    with session_scope(settings.resolved_database_url) as s:
        assert watches.all_watches(s) == []
