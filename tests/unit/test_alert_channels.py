"""The Email Channel block against a real SMTP server (aiosmtpd) run by the test."""

from __future__ import annotations

import socket

import pytest
from prefect.blocks.abstract import NotificationError

from blocks.channels import EmailChannel

pytestmark = pytest.mark.unit


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_mail_arrives_and_a_refusing_server_is_a_clear_error(tmp_path):
    from aiosmtpd.controller import Controller

    from pressfleet.stack.mailbox import SaveToFolder, read_mail

    port = free_port()
    ctl = Controller(SaveToFolder(tmp_path), hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        ch = EmailChannel(to=["ops@lab.test"], smtp_host="127.0.0.1", smtp_port=port, security="none")
        ch.send("the body", "[CRITICAL] site-down: blog")
        [mail] = read_mail(tmp_path)
        assert mail["subject"] == "[CRITICAL] site-down: blog" and "the body" in mail["body"]
    finally:
        ctl.stop()
    closed = EmailChannel(to=["ops@lab.test"], smtp_host="127.0.0.1", smtp_port=free_port(), security="none",
                          username="u", password="hunter2-secret")
    with pytest.raises(NotificationError) as err:
        closed.send("x", "y")
    assert "ConnectionRefusedError" in err.value.log and "hunter2-secret" not in err.value.log


def test_a_channel_without_an_address_is_refused():
    with pytest.raises(ValueError, match="at least one|too_short|at least 1"):
        EmailChannel(to=[], smtp_host="127.0.0.1", smtp_port=25)
    with pytest.raises(ValueError, match="not an email address"):
        EmailChannel(to=["nobody"], smtp_host="127.0.0.1", smtp_port=25)
    with pytest.raises(ValueError, match="host name"):
        EmailChannel(to=["a@b.test"], smtp_host="bad host;rm", smtp_port=25)
