"""Settings in groups: every setting in one group, still ``settings.<name>``, ``TT_<NAME>`` and a
top-level TOML key; the README's settings reference generated from the descriptions."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tests.readme_support import check_generated
from workers.settings import SETTING_GROUPS, Settings, env_name, settings_markdown


def test_every_setting_is_in_one_group_in_group_order():
    grouped = [name for group in SETTING_GROUPS for name in group.model_fields]
    assert grouped == list(Settings.model_fields)  # each once; `config` lists them group by group
    for group in SETTING_GROUPS:
        assert group.model_config["title"] and group.__doc__, group.__name__
    for name, field in Settings.model_fields.items():
        assert field.description, name


def test_environment_toml_and_overrides_reach_every_group(tmp_path, monkeypatch):
    config = tmp_path / "tt.toml"
    config.write_text('smtp_port = 2525\nalert_webhook_urls = ["https://a.example/h"]\nweb_port = 9000\nframe_rate = 2.0\n')
    monkeypatch.setenv("TT_CONFIG", str(config))
    monkeypatch.setenv("TT_WEB_PORT", "9001")  # the environment wins over the file
    monkeypatch.setenv("TT_ALLOW_HOSTS", "127.0.0.1, media.internal")
    monkeypatch.setenv("TT_SMTP_TO", '["desk@example.org"]')
    monkeypatch.setenv("TT_S3_REGION", "eu-west-1")
    settings = Settings(data_dir=tmp_path, repost_alerts="each")  # code wins over both
    assert (settings.smtp_port, settings.web_port, settings.frame_rate) == (2525, 9001, 2.0)
    assert settings.alert_webhook_urls == ["https://a.example/h"]
    assert settings.allow_hosts == ["127.0.0.1", "media.internal"] and settings.smtp_to == ["desk@example.org"]
    assert (settings.s3_region, settings.repost_alerts, settings.media_dir) == ("eu-west-1", "each", tmp_path / "media")
    assert settings.model_copy(update={"keep_videos": True}).keep_videos


def test_group_constraints_still_apply(monkeypatch):
    with pytest.raises(ValidationError, match="frame_rate"):
        Settings(frame_rate=0)
    monkeypatch.setenv("TT_SMTP_PORT", "0")
    with pytest.raises(ValidationError, match="smtp_port"):
        Settings()


def test_worker_plan_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv(env_name("score_gpus"), "0,1")
    monkeypatch.setenv("TT_WORKER_QUEUES", "score")
    settings = Settings()
    assert (settings.score_gpus, settings.worker_queues) == (["0", "1"], ["score"])
    monkeypatch.setenv("TT_SCORE_GPUS", "")
    assert Settings().score_gpus == []


def test_readme_settings_reference_is_current():
    check_generated("settings", settings_markdown())
