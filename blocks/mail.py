"""The SmtpRelay block: where WordPress sites send their mail (password resets, orders, notifications)."""

from __future__ import annotations

from typing import Literal, Optional

from prefect.blocks.core import Block
from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from pressfleet import validate


class SmtpRelay(Block):
    """An SMTP relay (your mail provider's submission server): host, port, TLS, login.

    A site that names it sends WordPress's mail through msmtp on its host, as the site's own user; the
    settings, password included, are in a file only that user can read (give each site its own relay login
    where the provider allows: a site's PHP can read its own)."""

    _block_type_name = "SMTP Relay"
    _block_type_slug = "smtp-relay"
    _description = "Where WordPress sites send mail: the relay's host, port, TLS and login."
    model_config = ConfigDict(hide_input_in_errors=True)

    host: str = Field(..., title="Relay host", description="e.g. smtp.example.com")
    port: int = Field(587, title="Port", ge=1, le=65535, description="587 for STARTTLS, 465 for TLS, 25 plain.")
    security: Literal["starttls", "tls", "none"] = Field("starttls", title="Security")
    user: Optional[str] = Field(None, title="User", max_length=200)
    password: Optional[SecretStr] = Field(None, title="Password")
    from_address: Optional[str] = Field(None, title="Envelope sender",
                                        description="Empty: wordpress@ the site's domain.")
    ca_pem: Optional[str] = Field(None, title="Relay's CA (PEM)",
                                  description="Only for a private relay whose certificate is not publicly trusted.")

    @field_validator("host")
    @classmethod
    def _check_host(cls, value: str) -> str:
        return validate.hostname(value)

    @field_validator("user")
    @classmethod
    def _check_user(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and (any(ord(c) < 32 or ord(c) == 127 for c in value) or '"' in value or "\\" in value):
            raise ValueError("the relay user may not hold control characters, double quotes or backslashes")
        return value or None

    @field_validator("from_address")
    @classmethod
    def _check_from(cls, value: Optional[str]) -> Optional[str]:
        return validate.email(value) if value else None

    @field_validator("ca_pem")
    @classmethod
    def _check_pem(cls, value: Optional[str]) -> Optional[str]:
        if value and "-----BEGIN CERTIFICATE-----" not in value:
            raise ValueError("expected PEM certificate text (-----BEGIN CERTIFICATE-----)")
        return value or None

    @model_validator(mode="after")
    def _check_login(self) -> "SmtpRelay":
        if self.user and not self.password:
            raise ValueError("a relay user needs its password")
        if self.password is not None and (any(ord(c) < 32 or ord(c) == 127 for c in self.password.get_secret_value())
                                          or len(self.password.get_secret_value()) > 512):
            raise ValueError("the relay password may not hold control characters (at most 512 characters)")
        return self

    def settings(self, domain: str):
        """The renderer's view (pressfleet.render.configs.MailRelay), the password in plain text."""
        from pressfleet.render.configs import MailRelay

        return MailRelay(host=self.host, port=self.port, security=self.security, user=self.user or "",
                         password=self.password.get_secret_value() if self.password else "",
                         from_address=self.from_address or f"wordpress@{domain}")
