"""Alerts: payloads, channels against local receivers and a local SMTP server, retries, the
send-or-not policy, and hostile metadata in every output."""

from __future__ import annotations

import base64
import csv
import dataclasses
import io
import json
import logging
import socket
from datetime import datetime, timedelta, timezone
from email import message_from_bytes
from email.parser import BytesParser
from email.policy import default as default_policy

import cv2
import numpy as np
import pytest

from tests.local_http import Receiver, SmtpServer
from tests.readme_support import check_generated
from workers.alerts import (
    Alert,
    AlertRecord,
    Decision,
    Digest,
    alert_decision,
    channels_from_settings,
    deliver,
    deliver_with_settings,
    due_digests,
    jpeg_thumbnail,
    sample_alert,
    send_test_alert,
)
from workers.alerts.message import THUMBNAIL_SIDE as ALERT_THUMBNAIL_SIDE
from workers.alerts.channels import (
    CHANNELS,
    NO_CHANNEL,
    DiscordWebhook,
    JsonWebhook,
    LogChannel,
    SlackWebhook,
    SmtpEmail,
    channels_markdown,
)
from workers.alerts.channels.base import Channel
from workers.errors import AlertError
from workers.sanitize import csv_cell, safe_name, sanitize
from workers.settings import Settings

HOSTILE_CAPTION = (
    "\x1b[31mred\x1b[0m\x00 line1\r\nline2\u2028 \u202egnp.exe\u202c =HYPERLINK(\"http://x\") "
    "@everyone <!channel> ../../etc/passwd C:\\Windows " + "A" * 100_000
)


def image_of(jpeg: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "thumbnail does not decode as an image"
    return image


def make_alert(**changes) -> Alert:
    """The sample alert about a 1280x720 best frame, with ``changes``."""
    frame = np.zeros((720, 1280, 3), np.uint8)
    frame[200:500, 300:900] = (250, 180, 20)
    fields = dict(target="astronaut", video_url="https://www.tiktok.com/@nasa/video/7300000000000000001",
                  confidence=0.87, positive_timestamps=[3.0, 1.0, 2.0], author="nasa", caption="Spacewalk! #space",
                  thumbnail=jpeg_thumbnail(frame, ALERT_THUMBNAIL_SIDE), video_key="tiktok:7300000000000000001")
    return dataclasses.replace(sample_alert(), **{**fields, **changes})


def fast(settings: Settings, **changes) -> Settings:
    return Settings(**{**settings.model_dump(exclude_unset=True), "alert_retry_backoff": 0.01,
                       "alert_timeout": 2.0, **changes})


@pytest.fixture()
def base_settings(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path, alert_log=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- channels against local receivers ----------------------------------------

def test_webhook_receives_json_with_decodable_thumbnail(base_settings):
    with Receiver() as hook:
        report = deliver_with_settings(make_alert(), fast(base_settings, alert_webhook_urls=[hook.url("/hook")]))
    assert report.delivered and report.to_json() == [
        {"channel": f"webhook http://127.0.0.1:{hook.httpd.server_address[1]}/…", "ok": True, "attempts": 1,
         "error": None}]
    (request,) = hook.requests
    assert request["headers"]["Content-Type"] == "application/json"
    body = json.loads(request["body"])
    assert body["event"] == "alert" and body["target"] == "astronaut"
    assert body["video_url"] == "https://www.tiktok.com/@nasa/video/7300000000000000001"
    assert body["author"] == "nasa" and body["caption"] == "Spacewalk! #space"
    assert body["confidence"] == 0.87 and body["positive_timestamps"] == [1.0, 2.0, 3.0]
    assert body["thumbnail"]["content_type"] == "image/jpeg"
    image = image_of(base64.b64decode(body["thumbnail"]["base64"]))
    assert max(image.shape[:2]) == 480  # downscaled from 1280x720


def test_every_delivery_carries_the_same_idempotency_key_in_header_and_payload(base_settings):
    """Alerts go out at least once: a receiver drops a repeat by its key (header or payload)."""
    alert = make_alert(key="k-1")
    digest = Digest("astronaut", [make_alert(key="k-1"), make_alert(key="k-2")])
    with Receiver() as hook, Receiver() as slack, Receiver() as discord, SmtpServer() as smtp:
        settings = fast(base_settings, alert_webhook_urls=[hook.url("/h")], alert_slack_webhook_urls=[slack.url("/s")],
                        alert_discord_webhook_urls=[discord.url("/d")], smtp_host="127.0.0.1", smtp_port=smtp.port,
                        smtp_security="none", smtp_from="tracker@example.org", smtp_to=["desk@example.org"])
        for message in (alert, alert, digest, digest):
            assert deliver_with_settings(message, settings).delivered
    keys = [r["headers"]["Idempotency-Key"] for r in hook.requests]
    assert keys == ["k-1", "k-1", digest.idempotency_key, digest.idempotency_key] and keys[2] != "k-1"
    assert [json.loads(r["body"])["idempotency_key"] for r in hook.requests] == keys
    assert [r["headers"]["Idempotency-Key"] for r in slack.requests + discord.requests] == keys + keys
    ids = [message_from_bytes(m)["Message-ID"] for m in smtp.messages]
    assert ids == [f"<{k}@example.org>" for k in keys]
    # The key depends on what the alert is about, never on when or how often it is built.
    assert Digest("astronaut", digest.alerts[::-1]).idempotency_key == digest.idempotency_key
    assert make_alert().idempotency_key == make_alert(confidence=0.5).idempotency_key != make_alert(target="x").idempotency_key


def test_slack_payload(base_settings):
    alert = make_alert(caption="<!channel> & <http://evil|click>", thumbnail_url="https://media.example/t.jpg")
    with Receiver() as hook:
        settings = fast(base_settings, alert_slack_webhook_urls=[hook.url("/slack")])
        assert deliver_with_settings(alert, settings).delivered
    body = json.loads(hook.requests[0]["body"])
    text = body["blocks"][0]["text"]["text"]
    assert "&lt;!channel&gt; &amp; &lt;http://evil|click&gt;" in text and "<!channel>" not in text
    assert "<https://www.tiktok.com/@nasa/video/7300000000000000001|astronaut found in a video by @nasa>" in text
    assert body["blocks"][1] == {"type": "image", "image_url": "https://media.example/t.jpg",
                                 "alt_text": "astronaut found in a video by @nasa"}


def test_discord_upload_with_thumbnail_and_no_mentions(base_settings):
    with Receiver() as hook:
        ok = deliver_with_settings(make_alert(caption="@everyone look"),
                                   fast(base_settings, alert_discord_webhook_urls=[hook.url("/discord")]))
    assert ok.delivered
    request = hook.requests[0]
    head = f"Content-Type: {request['headers']['Content-Type']}\r\n\r\n".encode()
    form = BytesParser(policy=default_policy).parsebytes(head + request["body"])
    parts = {p.get_param("name", header="content-disposition"): p for p in form.iter_parts()}
    payload = json.loads(parts["payload_json"].get_content())
    assert payload["allowed_mentions"] == {"parse": []}
    embed = payload["embeds"][0]
    assert embed["image"] == {"url": "attachment://thumbnail0.jpg"} and embed["description"] == "@everyone look"
    image_of(parts["files[0]"].get_payload(decode=True))


def smtp_settings(base_settings, port, **more) -> Settings:
    return fast(base_settings, smtp_host="127.0.0.1", smtp_port=port, smtp_security="none",
                smtp_from="tracker@newsroom.example", smtp_to="desk@newsroom.example, editor@newsroom.example",
                **more)


def test_smtp_email_with_attached_thumbnail(base_settings):
    alert = make_alert(caption=HOSTILE_CAPTION, author="evil\r\nBcc: victim@example.com")
    with SmtpServer() as server:
        report = deliver_with_settings(alert, smtp_settings(base_settings, server.port))
    assert report.delivered, report
    assert server.envelope.rcpt_tos == ["desk@newsroom.example", "editor@newsroom.example"]
    email = message_from_bytes(server.messages[0], policy=default_policy)
    assert email["Subject"].strip() == "[tiktok-tracker] astronaut found in a video by @evil Bcc: victim@example.com"
    assert email["Bcc"] is None  # header injection through the author name failed
    body = email.get_body(("plain",)).get_content()
    assert "https://www.tiktok.com/@nasa/video/7300000000000000001" in body and "Confidence: 87%" in body
    assert "\x1b" not in body and "\u202e" not in body and len(body) < 3000
    (attachment,) = list(email.iter_attachments())
    assert attachment.get_content_type() == "image/jpeg"
    image_of(attachment.get_content())


def test_smtp_login_and_refused_login(base_settings, monkeypatch):
    import smtplib

    with SmtpServer(user="bot", password="s3cret") as server:
        good = deliver_with_settings(make_alert(), smtp_settings(base_settings, server.port, smtp_user="bot",
                                                                 smtp_password="s3cret"))
        assert good.delivered and len(server.messages) == 1

        def refuse(self, user, password, **kw):
            raise smtplib.SMTPAuthenticationError(535, b"5.7.8 Authentication credentials invalid")

        monkeypatch.setattr(smtplib.SMTP, "login", refuse)
        bad = deliver_with_settings(make_alert(), smtp_settings(base_settings, server.port, smtp_user="bot",
                                                                smtp_password="wrong"))
    assert not bad.delivered and bad.results[0].attempts == 1  # refused login: not retried
    assert "refused" in bad.results[0].error and len(server.messages) == 1


def test_email_settings_must_be_complete(base_settings):
    with pytest.raises(AlertError, match="TT_SMTP_TO"):
        channels_from_settings(fast(base_settings, smtp_host="mail", smtp_from="a@b.c"))
    with pytest.raises(AlertError, match="TT_SMTP_FROM"):
        channels_from_settings(fast(base_settings, smtp_host="mail", smtp_to=["a@b.c"]))


# --- retries, and failures that never block others ----------------------------

def test_failing_channel_retried_with_backoff_then_succeeds(base_settings):
    waits = []
    with Receiver(statuses=[503, 500]) as hook:
        report = deliver(make_alert(), [JsonWebhook(hook.url("/h"))], retries=3, backoff=0.5, sleep=waits.append)
    assert report.results[0].ok and report.results[0].attempts == 3
    assert waits == [0.5, 1.0]


def test_permanent_http_error_not_retried(base_settings):
    with Receiver(statuses=[404]) as hook:
        report = deliver(make_alert(), [JsonWebhook(hook.url("/gone"))], retries=3, backoff=0, sleep=lambda s: None)
    assert report.results[0].attempts == 1 and "HTTP 404" in report.results[0].error


class Exploding(Channel):
    kind = "broken"

    def send(self, message, timeout):
        raise RuntimeError("bug in a channel")


def test_failing_channels_never_block_the_others(base_settings):
    dead = f"http://127.0.0.1:{free_port()}/nobody-listens"
    with Receiver() as hook:
        report = deliver(make_alert(), [JsonWebhook(dead), Exploding(), JsonWebhook(hook.url("/ok"))],
                         retries=2, backoff=0, sleep=lambda s: None)
    dead_result, broken, good = report.results
    assert (dead_result.ok, dead_result.attempts) == (False, 3) and "cannot reach" in dead_result.error
    assert (broken.ok, broken.attempts, broken.error) == (False, 3, "RuntimeError: bug in a channel")
    assert good.ok and len(hook.requests) == 1
    assert report.delivered and len(report.failures) == 2
    assert "nobody-listens" not in dead_result.error  # webhook paths are secrets: redacted


def test_alerts_test_sends_sample_through_every_channel(base_settings, caplog):
    with Receiver() as hook, Receiver() as slack:
        settings = fast(base_settings, alert_log=True, alert_webhook_urls=[hook.url("/a")],
                        alert_slack_webhook_urls=[slack.url("/s")])
        with caplog.at_level(logging.WARNING, logger="workers.alerts"):
            report = send_test_alert(settings)
    assert [r.ok for r in report.results] == [True, True, True]
    assert [r.channel.split()[0] for r in report.results] == ["log", "webhook", "slack"]
    assert "ALERT target=test-target" in caplog.text
    image_of(base64.b64decode(json.loads(hook.requests[0]["body"])["thumbnail"]["base64"]))
    with pytest.raises(AlertError, match="no alert channel"):
        send_test_alert(base_settings)


def test_digest_payloads(base_settings):
    digest = Digest("astronaut", [make_alert(video_key=f"k{i}", video_url=f"https://x/{i}") for i in range(12)])
    with Receiver() as hook, Receiver() as discord:
        report = deliver(digest, [JsonWebhook(hook.url("/h")), DiscordWebhook(discord.url("/d")), LogChannel()])
    assert all(r.ok for r in report.results)
    body = json.loads(hook.requests[0]["body"])
    assert body["event"] == "digest" and body["count"] == 12 and len(body["alerts"]) == 12
    assert body["alerts"][9]["thumbnail"]["base64"] and body["alerts"][10]["thumbnail"]["base64"] is None
    assert b"astronaut found in 12 videos (2 more not shown)" in discord.requests[0]["body"]


# --- the channel registry ------------------------------------------------------


def test_channel_registry_names_real_settings_and_derives_the_rest(base_settings):
    assert [kind.key for kind in CHANNELS] == ["log", "webhook", "slack", "discord", "email"]  # reports' order
    for kind in CHANNELS:
        assert kind.description, kind.key
        for name in kind.settings:
            assert Settings.model_fields[name].description, name
        assert not kind.configured(base_settings) and kind.channels(base_settings) == []  # alert_log=False: all off
    assert NO_CHANNEL == "no alert channel is configured (see the alert_* and smtp_* settings)"


def test_readme_channel_table_is_current():
    check_generated("alert channels", channels_markdown())


# --- should this alert be sent ------------------------------------------------

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)


def test_one_alert_per_video_and_target_ever():
    history = [AlertRecord("v1", "astronaut", "sent", NOW - timedelta(days=30))]
    assert alert_decision("v1", "astronaut", history, NOW) is Decision.SKIP
    assert alert_decision("v1", "flag", history, NOW) is Decision.SEND
    assert alert_decision("v2", "astronaut", history, NOW) is Decision.SEND
    failed = [AlertRecord("v3", "astronaut", "failed", NOW - timedelta(minutes=1))]
    assert alert_decision("v3", "astronaut", failed, NOW) is Decision.SEND  # every channel failed: try again


def test_cooldown_holds_then_digest_becomes_due():
    sent = AlertRecord("v1", "astronaut", "sent", NOW - timedelta(minutes=10))
    assert alert_decision("v2", "astronaut", [sent], NOW, cooldown=30) is Decision.HOLD
    assert alert_decision("v2", "flag", [sent], NOW, cooldown=30) is Decision.SEND  # per target
    assert alert_decision("v2", "astronaut", [sent], NOW, cooldown=5) is Decision.SEND
    history = [sent, AlertRecord("v3", "astronaut", "held", NOW - timedelta(minutes=2)),
               AlertRecord("v2", "astronaut", "held", NOW - timedelta(minutes=5))]
    assert alert_decision("v2", "astronaut", history, NOW, cooldown=30) is Decision.SKIP  # already held
    assert due_digests(history, NOW, timedelta(minutes=30)) == {}
    assert due_digests(history, NOW + timedelta(minutes=20), timedelta(minutes=30)) == {"astronaut": ["v2", "v3"]}
    naive = [AlertRecord("v9", "x", "held", datetime(2026, 5, 1, 11, 0))]
    assert due_digests(naive, NOW, 30) == {"x": ["v9"]}


# --- hostile metadata in outputs ------------------------------------------------

def test_sanitize_hostile_text():
    shown = sanitize(HOSTILE_CAPTION)
    assert len(shown) == 500 and shown.endswith("…")
    assert "\x1b" not in shown and "\x00" not in shown and "\n" not in shown and "\r" not in shown
    assert "\u202e" not in shown and "\u2028" not in shown
    assert shown.startswith("[31mred[0m line1 line2 gnp.exe")
    assert sanitize(None) == "" and sanitize(42) == "42"
    assert sanitize("a\n\n\n\nb\tc", multiline=True) == "a\n\nb c"
    assert sanitize("x" * 10, limit=None) == "x" * 10
    assert sanitize("emoji 👩‍🚀 stays") == "emoji 👩‍🚀 stays"


@pytest.mark.parametrize("raw, expected", [
    ("../../etc/passwd", "etc_passwd"), ("C:\\Windows\\system32", "C_Windows_system32"), ("", "unnamed"),
    ("..", "unnamed"), ("Café ☕ video", "Cafe_video"), (".hidden", "hidden"), ("a" * 300, "a" * 64),
])
def test_safe_name(raw, expected):
    assert safe_name(raw) == expected


def test_hostile_alert_json_and_csv_stay_well_formed():
    alert = make_alert(caption=HOSTILE_CAPTION, author="=cmd|' /C calc'!A0", target="astro\nnaut")
    text = json.dumps(alert.to_json())
    data = json.loads(text)
    assert len(data["caption"]) == 1000 and data["target"] == "astro naut"
    rows = io.StringIO()
    writer = csv.writer(rows)
    writer.writerow(["author", "caption"])
    writer.writerow([csv_cell(alert.author), csv_cell(alert.caption)])
    parsed = list(csv.reader(io.StringIO(rows.getvalue())))
    assert len(parsed) == 2 and rows.getvalue().count("\n") == 2  # one line per row
    assert parsed[1][0] == "'=cmd|' /C calc'!A0"  # a spreadsheet shows it, does not run it
    assert len(parsed[1][1]) == 2000


def test_sample_alert_is_complete():
    alert = sample_alert()
    image_of(alert.thumbnail)
    assert alert.title() == "test-target found in a video by @example"
    assert alert.when() == "at 0:03, 0:04, 0:07"


def test_alert_lists_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TT_ALERT_WEBHOOK_URLS", "https://a.example/h1, https://b.example/h2")
    monkeypatch.setenv("TT_SMTP_TO", '["x@y.z"]')
    settings = Settings(data_dir=tmp_path)
    assert settings.alert_webhook_urls == ["https://a.example/h1", "https://b.example/h2"]
    assert settings.smtp_to == ["x@y.z"]
    kinds = [c.kind for c in channels_from_settings(settings)]
    assert kinds == ["log", "webhook", "webhook"]
    assert isinstance(SmtpEmail("h", 25, "a@b", ["c@d"]), Channel) and SlackWebhook("https://s").kind == "slack"
