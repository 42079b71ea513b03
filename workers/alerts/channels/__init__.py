"""Alert channels, one module each: generic JSON webhook, Slack, Discord, SMTP e-mail, log."""

from workers.alerts.channels.base import Channel, ChannelFailed
from workers.alerts.channels.discord import DiscordWebhook
from workers.alerts.channels.log import LogChannel
from workers.alerts.channels.slack import SlackWebhook
from workers.alerts.channels.smtp import SmtpEmail
from workers.alerts.channels.webhook import JsonWebhook

__all__ = ["Channel", "ChannelFailed", "DiscordWebhook", "JsonWebhook", "LogChannel", "SlackWebhook", "SmtpEmail"]
