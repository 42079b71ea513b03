"""Alert channels, one module each, each ending with its ``CHANNEL`` (a ``ChannelKind``).

``CHANNELS`` is the registry: which channels the settings configure (``delivery``), the hint
when none is, and the README's channel table all come from it. Adding a channel is its module
(a ``Channel`` and its ``CHANNEL``), one line in ``CHANNEL_MODULES``, and its settings fields
(``workers.settings.AlertSettings``).
"""

import importlib

from workers.alerts.channels.base import Channel, ChannelFailed, ChannelKind
from workers.alerts.channels.discord import DiscordWebhook
from workers.alerts.channels.log import LogChannel
from workers.alerts.channels.slack import SlackWebhook
from workers.alerts.channels.smtp import SmtpEmail
from workers.alerts.channels.webhook import JsonWebhook

# In the order reports list the channels.
CHANNEL_MODULES = (
    "workers.alerts.channels.log",
    "workers.alerts.channels.webhook",
    "workers.alerts.channels.slack",
    "workers.alerts.channels.discord",
    "workers.alerts.channels.smtp",
)
CHANNELS: tuple[ChannelKind, ...] = tuple(importlib.import_module(name).CHANNEL for name in CHANNEL_MODULES)


def _setting_families() -> str:
    """``alert_* and smtp_*``: the prefixes of the settings the channels read."""
    families = list(dict.fromkeys(f"{name.split('_')[0]}_*" for kind in CHANNELS for name in kind.settings))
    return families[0] if len(families) == 1 else f"{', '.join(families[:-1])} and {families[-1]}"


NO_CHANNEL = f"no alert channel is configured (see the {_setting_families()} settings)"


def channels_markdown() -> str:
    """The README's channel table (``tests/test_alerts.py`` fails when the README's copy differs)."""
    rows = [f"| {kind.description} | {', '.join(f'`{name}`' for name in kind.settings)} |" for kind in CHANNELS]
    return "\n".join(["| channel | settings |", "| --- | --- |", *rows]) + "\n"


__all__ = [
    "CHANNELS",
    "NO_CHANNEL",
    "Channel",
    "ChannelFailed",
    "ChannelKind",
    "DiscordWebhook",
    "JsonWebhook",
    "LogChannel",
    "SlackWebhook",
    "SmtpEmail",
    "channels_markdown",
]
