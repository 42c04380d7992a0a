"""Alert channels: the Email Channel notification block (SMTP), beside Prefect's own notification blocks.

Slack, Microsoft Teams, PagerDuty and generic webhooks are Prefect's own blocks (SlackWebhook,
MicrosoftTeamsWebhook, PagerDutyWebHook, CustomWebhookNotificationBlock). Prefect's own email block needs a
SendGrid account, and prefect-email's credentials are not a notification block an automation can send to, so
mail over any SMTP server is this block. Automations' "send a notification" actions load it inside the Prefect
server: pyproject's `prefect.collections` entry point names this module so the server finds the class.
This module imports only prefect and the standard library (the server imports it at start-up).
"""

from __future__ import annotations

import asyncio
import re
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Optional

from prefect.blocks.abstract import NotificationBlock, NotificationError
from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

_HOST_RE = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
_IPV4_RE = re.compile(r"^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$")
_EMAIL_RE = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$")


def check_email(value: str) -> str:
    if not isinstance(value, str) or len(value) > 254 or not _EMAIL_RE.fullmatch(value):
        raise ValueError(f"not an email address: {value!r}")
    return value


class EmailChannel(NotificationBlock):
    """Alert mail through an SMTP server: to one or more addresses, plain, STARTTLS or TLS, with an optional login."""

    _block_type_name = "Email Channel"
    _block_type_slug = "email-channel"
    _description = "Alert mail through an SMTP server (yours, or your provider's submission server)."
    model_config = ConfigDict(hide_input_in_errors=True)

    to: list[str] = Field(..., title="To", min_length=1, description="Who gets the mail.")
    smtp_host: str = Field(..., title="SMTP host")
    smtp_port: int = Field(587, title="SMTP port", ge=1, le=65535)
    security: str = Field("starttls", title="Security", pattern=r"^(starttls|tls|none)$",
                          description="starttls (587), tls (465) or none (a local relay).")
    username: Optional[str] = Field(None, title="User", max_length=200)
    password: Optional[SecretStr] = Field(None, title="Password")
    from_address: str = Field("pressfleet@localhost", title="From")
    timeout_seconds: float = Field(20.0, title="Timeout (seconds)", gt=0, le=120)
    ca_pem: Optional[str] = Field(None, title="Server's CA (PEM)",
                                  description="Only for a private server whose certificate is not publicly trusted.")

    @field_validator("to")
    @classmethod
    def _to(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("an email channel needs at least one address to send to")
        return [check_email(v) for v in value]

    @field_validator("from_address")
    @classmethod
    def _from(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9.-]+", value or ""):
            raise ValueError(f"not an email address: {value!r}")
        return value

    @field_validator("smtp_host")
    @classmethod
    def _host(cls, value: str) -> str:
        if not (_HOST_RE.fullmatch(value or "") or _IPV4_RE.fullmatch(value or "")):
            raise ValueError(f"not a host name or IPv4 address: {value!r}")
        return value

    @model_validator(mode="after")
    def _login(self) -> "EmailChannel":
        if self.username and not self.password:
            raise ValueError("an SMTP user needs its password")
        if self.username and any(ord(c) < 32 for c in self.username):
            raise ValueError("the SMTP user may not hold control characters")
        return self

    def message(self, body: str, subject: Optional[str]) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.from_address
        msg["To"] = ", ".join(self.to)
        msg["Subject"] = " ".join((subject or "pressfleet alert").split())[:250]
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = make_msgid(domain="pressfleet")
        msg.set_content(body)
        return msg

    def send(self, body: str, subject: Optional[str] = None) -> None:
        """Send now (blocking). Raises NotificationError saying why, without the password."""
        context = ssl.create_default_context(cadata=self.ca_pem) if self.ca_pem else ssl.create_default_context()
        try:
            if self.security == "tls":
                client = smtplib.SMTP_SSL(self.smtp_host, self.smtp_port, timeout=self.timeout_seconds, context=context)
            else:
                client = smtplib.SMTP(self.smtp_host, self.smtp_port, timeout=self.timeout_seconds)
            with client:
                if self.security == "starttls":
                    client.starttls(context=context)
                if self.username and self.password:
                    client.login(self.username, self.password.get_secret_value())
                refused = client.send_message(self.message(body, subject))
        except (OSError, smtplib.SMTPException) as exc:
            raise NotificationError(
                log=f"mail to {', '.join(self.to)} through {self.smtp_host}:{self.smtp_port} failed: "
                    f"{type(exc).__name__}: {_safe(exc)}") from None
        if refused:
            raise NotificationError(log=f"the SMTP server refused {', '.join(sorted(refused))}")

    async def notify(self, body: str, subject: Optional[str] = None) -> None:  # what automations call (awaited)
        await asyncio.to_thread(self.send, body, subject)


def _safe(exc: BaseException) -> str:
    text = str(exc)
    return text[:300]
