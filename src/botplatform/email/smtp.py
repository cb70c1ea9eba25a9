"""Sending one message over SMTP (aiosmtplib), configured by the SMTP_* settings."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate
from typing import Any
from urllib.parse import urlparse

import aiosmtplib

from botplatform.config import Settings
from botplatform.models import Email


class EmailNotConfigured(Exception):
    pass


def build_message(settings: Settings, email: Email) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = email.to_address
    message["Subject"] = email.subject
    message["Date"] = formatdate(localtime=False)
    # A stable Message-ID per outbox row lets receivers drop a duplicate if a worker dies
    # after the server accepted the message but before the row was marked sent.
    host = urlparse(settings.app_url).hostname or "localhost"
    message["Message-ID"] = f"<{email.id}@{host}>"
    message.set_content(email.text_body)
    if email.html_body:
        message.add_alternative(email.html_body, subtype="html")
    return message


async def deliver(settings: Settings, email: Email) -> None:
    if not settings.smtp_host:
        raise EmailNotConfigured("SMTP_HOST is not set")
    await aiosmtplib.send(build_message(settings, email), **connection(settings))


def connection(settings: Settings) -> dict[str, Any]:
    """How to reach the SMTP server (the SMTP_* settings), as aiosmtplib takes it."""
    return {
        "hostname": settings.smtp_host,
        "port": settings.smtp_port,
        "username": settings.smtp_user or None,
        "password": settings.smtp_pass or None,
        "use_tls": settings.smtp_ssl,
        "start_tls": settings.smtp_starttls and not settings.smtp_ssl,
        "timeout": settings.smtp_timeout_seconds,
    }
