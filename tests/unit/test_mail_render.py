"""WordPress mail's pure parts: the SMTP Relay block's checks, msmtp's settings, the files a site gets."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from blocks.mail import SmtpRelay
from pressfleet.fleet.siteconfig import SiteConfig
from pressfleet.plan.desired import mail_files, php_remove
from pressfleet.render.configs import RenderError, render_msmtp, render_php_pool
from pressfleet.plan.sizing import plan_host

pytestmark = pytest.mark.unit

SITE = SiteConfig(name="shop", domain="shop.example.com", admin_email="a@example.com", mail_relay=True)


def test_the_password_lives_in_its_own_file_and_both_are_the_sites_users_alone():
    relay = SmtpRelay(host="smtp.example.com", user="shop", password='p "a" \\ss word').settings(SITE.domain)
    files = {f.path: f for f in mail_files(SITE, relay)}
    conf, secret = files[SITE.msmtp_config_path], files[SITE.msmtp_password_path]
    assert secret.content == b'p "a" \\ss word'  # as typed: no quoting rules on the way
    assert b"p \"a\"" not in conf.content and f'passwordeval "cat {SITE.msmtp_password_path}"'.encode() in conf.content
    assert {(f.mode, f.owner, f.group) for f in (conf, secret)} == {(0o600, "shop", "shop")}
    assert b"tls_starttls on" in conf.content and b"from wordpress@shop.example.com" in conf.content
    assert mail_files(SITE, None) == []


def test_bad_relay_settings_are_refused_before_anything_is_rendered():
    for bad in ({"host": "smtp.example.com; rm -rf /"}, {"host": "relay", "user": 'a"b', "password": "x"},
                {"host": "relay", "user": "u"}, {"host": "relay", "port": 0},
                {"host": "relay", "user": "u", "password": "line\nbreak"}, {"host": "relay", "ca_pem": "not a pem"}):
        with pytest.raises((ValidationError, ValueError)):
            SmtpRelay(**bad)
    relay = SmtpRelay(host="relay.example.com", user="u", password="x").settings(SITE.domain)
    with pytest.raises(RenderError):
        render_msmtp(SITE, relay.model_copy(update={"password": "a\nb"}))


def test_the_pool_sends_mail_through_msmtp_only_with_a_relay_and_leftovers_are_removed():
    sizing = plan_host(4 << 30).php
    assert f"php_admin_value[sendmail_path] = \"/usr/bin/msmtp -C {SITE.msmtp_config_path} -t\"" in render_php_pool(SITE, sizing)
    plain = SITE.model_copy(update={"mail_relay": False})
    assert "sendmail_path" not in render_php_pool(plain, sizing)
    assert SITE.msmtp_password_path in php_remove(plain) and SITE.msmtp_password_path not in php_remove(SITE)
