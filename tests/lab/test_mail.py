"""WordPress mail through an SMTP relay (issue 11): the shared host's second site names an SMTP Relay block; a password
reset asked on its wp-login.php (a real request, through nginx and PHP-FPM) reaches a real SMTP server this test
runs (aiosmtpd on the lab bridge, STARTTLS with its own CA, a login), and the test reads it there. The relay's
settings are the site's user's alone (not nginx's, not the other site's)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import subprocess
import threading

import pytest

from pressfleet.lab import hosts as lab
from pressfleet.ssh.remote import run
from tests.conftest import connect_lab

pytestmark = [pytest.mark.lab, pytest.mark.timeout(900)]

RELAY_USER = "wpmail"
RELAY_PASSWORD = 'relay "pass" with spaces'


def _certificate(address: str, folder) -> tuple[str, str, str]:
    """A self-signed certificate for ADDRESS (its own CA): (cert path, key path, PEM text)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pressfleet test relay")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(address))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    cert_path, key_path = folder / "relay.crt", folder / "relay.key"
    cert_path.write_text(pem)
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path), pem


@pytest.fixture(scope="module")
def relay(tmp_path_factory):
    """aiosmtpd on the lab bridge: STARTTLS required, a login required; it keeps what it receives."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    address = str(lab.namespace().bridge_address)
    lab.ensure_network()
    cert, key, pem = _certificate(address, tmp_path_factory.mktemp("relay"))
    with socket.socket() as s:
        s.bind((address, 0))
        port = s.getsockname()[1]

    class Handler:
        def __init__(self) -> None:
            self.messages: list = []
            self.logins: list = []
            self.arrived = threading.Event()

        async def handle_DATA(self, server, session, envelope):
            self.messages.append(envelope)
            self.arrived.set()
            return "250 OK"

    handler = Handler()

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and auth_data.login == RELAY_USER.encode() \
            and auth_data.password == RELAY_PASSWORD.encode()
        handler.logins.append(ok)
        return AuthResult(success=ok)

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    controller = Controller(handler, hostname=address, port=port, tls_context=context, require_starttls=True,
                            authenticator=authenticator, auth_required=True)
    controller.start()
    try:
        yield {"address": address, "port": port, "pem": pem, "handler": handler}
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def mail_site(shared_host, prefect_harness, relay):
    """The session's shared host's second site (two.lab.test) given the relay: its PHP step provisioned again
    (the pool's sendmail_path, msmtp's files as the site's user); afterwards provisioned again without one,
    which takes them away."""
    from blocks.mail import SmtpRelay
    from flows.provision_wordpress import provision_wordpress

    smtp = SmtpRelay(host=relay["address"], port=relay["port"], security="starttls", user=RELAY_USER,
                     password=RELAY_PASSWORD, ca_pem=relay["pem"])
    plain = shared_host.two.site
    site = plain.model_copy(update={"mail_relay": smtp})
    report = provision_wordpress(server=shared_host.server, site=site, components=["php"])
    assert all(c["passed"] for c in report.checks), report.checks
    yield shared_host.host, site, shared_host.one.config
    provision_wordpress(server=shared_host.server, site=plain, components=["php"])
    conn = connect_lab(shared_host.host)
    try:
        assert not run(conn, ["test", "-e", site.config().msmtp_config_path], check=False).ok  # taken away
    finally:
        conn.close()


def test_a_password_reset_reaches_the_relay_over_starttls_with_the_sites_login(mail_site, relay):
    host, site, _ = mail_site
    handler = relay["handler"]
    handler.messages.clear()
    handler.arrived.clear()
    answer = subprocess.run(
        ["curl", "-ksS", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", "--max-time", "60",
         "--resolve", f"{site.domain}:443:{host.address}", "--data", "user_login=admin&redirect_to=&wp-submit=x",
         f"https://{site.domain}/wp-login.php?action=lostpassword"], capture_output=True, text=True, timeout=90)
    assert answer.stdout.startswith("302 ") and "checkemail=confirm" in answer.stdout, answer

    assert handler.arrived.wait(30), "no mail reached the relay"
    [mail] = handler.messages
    text = mail.content.decode(errors="replace")
    assert mail.rcpt_tos == ["admin@lab.test"]
    assert mail.mail_from == f"wordpress@{site.domain}"
    assert "Password Reset" in text and f"https://{site.domain}/wp-login.php?" in text.replace("=\r\n", ""), text
    assert handler.logins and all(handler.logins), "the relay's login was not used (or was wrong)"


def test_the_relay_settings_are_the_sites_users_alone(mail_site):
    host, site, neighbour = mail_site
    config = site.config()
    conn = connect_lab(host)
    try:
        for path in (config.msmtp_config_path, config.msmtp_password_path):
            assert run(conn, ["stat", "-c", "%U:%G %a", path]).stdout.split() == [f"{config.user}:{config.group}", "600"]
            for other in ("www-data", neighbour.user, "nobody"):  # nginx, the other site's user, anyone
                denied = run(conn, ["runuser", "-u", other, "--", "cat", path], check=False)
                assert not denied.ok and "Permission denied" in denied.stderr, (other, path, denied)
        assert run(conn, ["cat", config.msmtp_password_path]).stdout == RELAY_PASSWORD
        assert RELAY_PASSWORD not in run(conn, ["cat", config.msmtp_config_path]).stdout
        pool = run(conn, ["cat", f"/etc/php/8.2/fpm/pool.d/{config.name}.conf"]).stdout
        assert config.msmtp_config_path in pool and RELAY_PASSWORD not in pool
    finally:
        conn.close()
