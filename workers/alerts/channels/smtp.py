"""E-mail through SMTP (stdlib ``smtplib``): a plain-text message, the thumbnail attached."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate

from workers.alerts.channels.base import Channel, ChannelFailed, ChannelKind
from workers.alerts.message import AlertMessage, alerts_of
from workers.errors import AlertError
from workers.sanitize import sanitize
from workers.settings import env_name


def email_message(message: AlertMessage, sender: str, recipients: list[str]) -> EmailMessage:
    email = EmailMessage()
    email["Subject"] = sanitize(f"[tiktok-tracker] {message.title()}", 200)
    email["From"] = sender
    email["To"] = ", ".join(recipients)
    email["Date"] = formatdate(localtime=False)
    # The same Message-ID on every delivery of one alert: mail clients drop the repeat.
    email["Message-ID"] = f"<{message.idempotency_key}@{sender.rpartition('@')[2] or 'tiktok-tracker'}>"
    blocks = ["\n".join(a.text_lines()) for a in alerts_of(message)]
    email.set_content("\n\n".join(blocks) + "\n\n-- \ntiktok-tracker\n")
    for i, alert in enumerate(alerts_of(message)):
        if alert.thumbnail:
            email.add_attachment(alert.thumbnail, maintype="image", subtype="jpeg", filename=f"thumbnail{i}.jpg")
    return email


class SmtpEmail(Channel):
    kind = "email"

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        recipients: list[str],
        user: str | None = None,
        password: str | None = None,
        security: str = "starttls",
    ):
        self.host, self.port, self.sender, self.recipients = host, port, sender, list(recipients)
        self.user, self.password, self.security = user, password, security

    @property
    def name(self) -> str:
        return f"email {self.host}:{self.port} -> {len(self.recipients)} recipient(s)"

    def send(self, message: AlertMessage, timeout: float) -> None:
        email = email_message(message, self.sender, self.recipients)
        context = ssl.create_default_context()
        try:
            if self.security == "ssl":
                client = smtplib.SMTP_SSL(self.host, self.port, timeout=timeout, context=context)
            else:
                client = smtplib.SMTP(self.host, self.port, timeout=timeout)
            with client:
                if self.security == "starttls":
                    client.starttls(context=context)
                if self.user:
                    client.login(self.user, self.password or "")
                client.send_message(email)
        except (
            smtplib.SMTPAuthenticationError,
            smtplib.SMTPRecipientsRefused,
            smtplib.SMTPSenderRefused,
            smtplib.SMTPNotSupportedError,
        ) as err:
            raise ChannelFailed(f"SMTP {self.host} refused: {err}", permanent=True) from None
        except (TimeoutError, smtplib.SMTPException, OSError) as err:
            raise ChannelFailed(f"SMTP {self.host}:{self.port}: {type(err).__name__}: {err}") from None


def smtp_channels(settings) -> list[Channel]:
    """The e-mail channel of ``settings``; ``AlertError`` when the sender or the recipients are missing."""
    sender = settings.smtp_from or settings.smtp_user
    if not sender or "@" not in sender:
        raise AlertError(f"e-mail alerts need a sender address: set {env_name('smtp_from')}")
    if not settings.smtp_to:
        raise AlertError(f"e-mail alerts need recipients: set {env_name('smtp_to')} (comma-separated addresses)")
    password = settings.smtp_password
    return [
        SmtpEmail(
            settings.smtp_host,
            settings.smtp_port,
            sender,
            settings.smtp_to,
            user=settings.smtp_user,
            password=getattr(password, "get_secret_value", lambda: password)(),
            security=settings.smtp_security,
        )
    ]


CHANNEL = ChannelKind(
    SmtpEmail,
    "e-mail (thumbnail attached)",
    ("smtp_host", "smtp_port", "smtp_security", "smtp_user", "smtp_password", "smtp_from", "smtp_to"),
    smtp_channels,
)
