"""The Server block's validation and secrecy, and remote.py's host-key handling.

Host-key tests talk to a small SSH server run in this process (paramiko's server side, on
127.0.0.1 and a random port) that executes commands on this machine: fast, no root, no lab.
No Prefect server is needed: blocks are built in memory and never saved.
"""

from __future__ import annotations

import re
import socket
import subprocess
import threading
import time

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from pydantic import ValidationError

from blocks.server import Server
from pressfleet.plan import facts
from pressfleet.ssh import remote
from tasks.host import gather_host_facts

pytestmark = pytest.mark.unit


def new_ed25519() -> tuple[str, paramiko.PKey]:
    """A fresh Ed25519 key: (OpenSSH private key text, paramiko key)."""
    private = ed25519.Ed25519PrivateKey.generate()
    text = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()
    return text, remote.load_private_key(text)


CLIENT_KEY_TEXT, CLIENT_KEY = new_ed25519()
SECRET_MARKER = CLIENT_KEY_TEXT.splitlines()[2]  # a line of the key body, to look for in output


class _Interface(paramiko.ServerInterface):
    def __init__(self, authorized: paramiko.PKey, user: str):
        self.authorized = authorized
        self.user = user
        self.command: bytes | None = None
        self.exec_event = threading.Event()

    def get_allowed_auths(self, username):
        return "publickey"

    def check_auth_publickey(self, username, key):
        if username == self.user and key == self.authorized:
            return paramiko.AUTH_SUCCESSFUL
        return paramiko.AUTH_FAILED

    def check_channel_request(self, kind, chanid):
        if kind == "session":
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED_OPEN_FAILED

    def check_channel_exec_request(self, channel, command):
        self.command = command
        self.exec_event.set()
        return True


class FakeSSHServer:
    """An SSH server on 127.0.0.1 that runs each exec request with `sh -c` on this machine."""

    def __init__(self, host_key: paramiko.PKey, authorized: paramiko.PKey, user: str = "root",
                 listen_after: float = 0.0):
        """listen_after > 0: the port is bound but refuses connections for that long (as while sshd
        re-executes itself on a reload)."""
        self.host_key = host_key
        self.authorized = authorized
        self.user = user
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.transports: list[paramiko.Transport] = []
        self._stop = False
        self._thread = threading.Timer(listen_after, self._accept_loop)
        self._thread.daemon = True
        self._thread.start()

    @property
    def host_key_line(self) -> str:
        return remote.host_key_line(self.host_key)

    def _accept_loop(self) -> None:
        try:
            self.sock.listen(8)
        except OSError:  # closed before it was due to listen
            return
        while not self._stop:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        transport = paramiko.Transport(client)
        self.transports.append(transport)
        transport.add_server_key(self.host_key)
        interface = _Interface(self.authorized, self.user)
        try:
            transport.start_server(server=interface)
        except (paramiko.SSHException, EOFError, OSError):
            return
        while transport.is_active():
            channel = transport.accept(timeout=5)
            if channel is None:
                continue
            if not interface.exec_event.wait(5):
                channel.close()
                continue
            interface.exec_event.clear()
            threading.Thread(target=self._exec, args=(channel, interface.command), daemon=True).start()

    @staticmethod
    def _exec(channel: paramiko.Channel, command: bytes) -> None:
        chunks = []
        while True:
            data = channel.recv(65536)
            if not data:
                break
            chunks.append(data)
        proc = subprocess.run(["sh", "-c", command.decode()], input=b"".join(chunks), capture_output=True)
        channel.sendall(proc.stdout)
        channel.sendall_stderr(proc.stderr)
        channel.send_exit_status(proc.returncode)
        channel.shutdown_write()
        channel.close()

    def close(self) -> None:
        self._stop = True
        self._thread.cancel()
        self.sock.close()
        for transport in self.transports:
            transport.close()


@pytest.fixture(scope="module")
def sshd():
    _, host_key = new_ed25519()
    server = FakeSSHServer(host_key=host_key, authorized=CLIENT_KEY)
    yield server
    server.close()


def make_server(**overrides) -> Server:
    values = {"address": "10.200.0.21", "private_key": CLIENT_KEY_TEXT}
    values.update(overrides)
    return Server(**values)


def local_server(sshd: FakeSSHServer, **overrides) -> Server:
    values = {"address": "127.0.0.1", "port": sshd.port, "host_key": sshd.host_key_line}
    values.update(overrides)
    return make_server(**values)


# -- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    ["a;rm -rf /", "", " ", "$(id)", "`id`", "host name", "-oProxyCommand=x", "a..b", "1.2.3.256",
     "web1.example.com;id", "x" * 254, "user@host", "host:22", "exa_mple.com", "a\nb"],
)
def test_bad_address_is_refused(address):
    with pytest.raises(ValidationError, match="address"):
        make_server(address=address)


@pytest.mark.parametrize(
    ("given", "kept"),
    [("10.200.0.21", "10.200.0.21"), ("web1.example.com", "web1.example.com"),
     ("WEB1.Example.COM", "web1.example.com"), ("::1", "::1"), ("localhost", "localhost"),
     (" 203.0.113.10 ", "203.0.113.10")],
)
def test_good_address_is_kept(given, kept):
    assert make_server(address=given).address == kept


@pytest.mark.parametrize("port", [0, -1, 65536, 10**6, "ssh", True, None])
def test_bad_port_is_refused(port):
    with pytest.raises(ValidationError, match="port"):
        make_server(port=port)


def test_port_defaults_to_22_and_accepts_high_ports():
    assert make_server().port == 22
    assert make_server(port=65535).port == 65535


@pytest.mark.parametrize("user", ["Root", "", "a b", "root;id", "-oops", "x" * 33, "$(id)", "ro\not", "1abc"])
def test_bad_user_is_refused(user):
    with pytest.raises(ValidationError, match="user"):
        make_server(user=user)


def test_user_defaults_to_root():
    assert make_server().user == "root"
    assert make_server(user="deploy_1").user == "deploy_1"


@pytest.mark.parametrize(
    "host_key",
    ["garbage", "ssh-ed25519", "ssh-ed25519 not*base64", "ssh-dss AAAAB3NzaC1kc3MAAACBAP",
     "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPiI", "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIPiIjUCyYkoLAiOl+FwnXVS8A5yTc0uKz6Sr3W/Bhj/A"],
)
def test_bad_host_key_is_refused(host_key):
    with pytest.raises(ValidationError, match="host_key"):
        make_server(host_key=host_key)


def test_host_key_comment_is_dropped_and_empty_means_none():
    _, key = new_ed25519()
    line = remote.host_key_line(key)
    assert make_server(host_key=f"  {line} root@web1\n").host_key == line
    assert make_server(host_key="").host_key is None
    assert make_server().host_key is None


def test_private_key_must_be_key_text():
    with pytest.raises(ValidationError, match="private_key"):
        make_server(private_key="hunter2")


# -- secrecy ----------------------------------------------------------------------------------


def test_private_key_never_shown():
    server = make_server()
    for text in (repr(server), str(server), server.model_dump_json(), str(server.model_dump())):
        assert SECRET_MARKER not in text
        assert "PRIVATE KEY" not in text
    assert server.private_key.get_secret_value() == CLIENT_KEY_TEXT


def test_private_key_not_in_validation_errors():
    with pytest.raises(ValidationError) as info:
        Server(address="a;b", user="Bad User", private_key=CLIENT_KEY_TEXT)
    assert SECRET_MARKER not in str(info.value)
    broken = CLIENT_KEY_TEXT.replace("PRIVATE KEY-----", "PRIVATE KEE-----")
    with pytest.raises(ValidationError) as info:
        make_server(private_key=broken)
    assert SECRET_MARKER not in str(info.value)


def test_unreadable_private_key_error_does_not_quote_it():
    lines = CLIENT_KEY_TEXT.splitlines()
    damaged = "\n".join(lines[:2] + ["!!!" + lines[2][3:]] + lines[3:])
    with pytest.raises(remote.PrivateKeyError) as info:
        remote.load_private_key(damaged)
    assert lines[2][3:] not in str(info.value)
    assert info.value.__cause__ is None


# -- fingerprints -----------------------------------------------------------------------------


def test_fingerprint_matches_ssh_keygen(tmp_path):
    _, key = new_ed25519()
    line = remote.host_key_line(key)
    server = make_server(host_key=line)
    fp = server.fingerprint()
    assert re.fullmatch(r"SHA256:[A-Za-z0-9+/]{43}", fp)
    pub = tmp_path / "k.pub"
    pub.write_text(line + "\n")
    out = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", str(pub)], capture_output=True, text=True)
    if out.returncode == 0:
        assert out.stdout.split()[1] == fp


def test_fingerprint_is_none_without_pinned_key():
    assert make_server().fingerprint() is None


# -- host keys against a live SSH server ------------------------------------------------------


def test_pinned_key_connects_and_quotes_every_argument(sshd):
    server = local_server(sshd)
    with server.connect() as conn:
        result = remote.run(conn, ["printf", "%s|", "a b", "$(id)", "it's", ";true"])
    assert result.stdout == "a b|$(id)|it's|;true|"


def test_stdin_reaches_the_command(sshd):
    with local_server(sshd).connect() as conn:
        result = remote.run(conn, ["cat"], stdin="line one\nline two\n")
    assert result.stdout == "line one\nline two\n"


def test_failed_command_raises_with_status_and_stderr(sshd):
    with local_server(sshd).connect() as conn:
        with pytest.raises(remote.RemoteCommandError) as info:
            remote.run(conn, ["sh", "-c", "echo nope >&2; exit 3"])
        unchecked = remote.run(conn, ["sh", "-c", "exit 4"], check=False)
    assert info.value.exit_status == 3
    assert "nope" in info.value.stderr
    assert "status 3" in str(info.value) and str(sshd.port) in str(info.value)
    assert unchecked.exited == 4


def test_large_stdin_and_output_do_not_deadlock(sshd):
    payload = "x" * 4_000_000 + "\n"
    with local_server(sshd).connect() as conn:
        result = remote.run(conn, ["cat"], stdin=payload, timeout=20)
    assert result.stdout == payload


def test_slow_command_times_out(sshd):
    with local_server(sshd).connect() as conn:
        with pytest.raises(remote.RemoteCommandTimeout, match="sleep"):
            remote.run(conn, ["sleep", "3"], timeout=0.3)


def test_wrong_pinned_key_is_a_mismatch(sshd):
    _, other = new_ed25519()
    server = local_server(sshd, host_key=remote.host_key_line(other))
    with pytest.raises(remote.HostKeyMismatch) as info:
        server.connect()
    message = str(info.value)
    assert other.fingerprint in message
    assert sshd.host_key.fingerprint in message
    assert f"127.0.0.1:{sshd.port}" in message


def test_unpinned_key_is_refused_without_trust_on_first_use(sshd):
    server = local_server(sshd, host_key=None)
    with pytest.raises(remote.HostKeyUnknown) as info:
        server.connect()
    assert sshd.host_key.fingerprint in str(info.value)
    assert server.host_key is None


def test_trust_on_first_use_records_the_key(sshd):
    server = local_server(sshd, host_key=None, trust_on_first_use=True)
    with server.connect() as conn:
        assert remote.run(conn, ["true"]).exited == 0
    assert server.host_key == sshd.host_key_line
    assert server.fingerprint() == sshd.host_key.fingerprint
    # Once pinned, the key is checked like any other pin.
    with server.connect():
        pass


def test_wrong_client_key_fails_authentication(sshd):
    other_text, _ = new_ed25519()
    server = local_server(sshd, private_key=other_text)
    with pytest.raises(remote.AuthenticationFailed) as info:
        server.connect()
    assert other_text.splitlines()[2] not in str(info.value)


def test_user_ssh_files_are_ignored(sshd, tmp_path, monkeypatch):
    """~/.ssh/config cannot redirect the connection and ~/.ssh/known_hosts adds no trust."""
    ssh_dir = tmp_path / ".ssh"
    ssh_dir.mkdir()
    (ssh_dir / "config").write_text("Host *\n  HostName 192.0.2.1\n  Port 9\n  User nobody\n")
    (ssh_dir / "known_hosts").write_text(f"[127.0.0.1]:{sshd.port} {sshd.host_key_line}\n")
    monkeypatch.setenv("HOME", str(tmp_path))
    with local_server(sshd).connect() as conn:
        assert remote.run(conn, ["true"]).exited == 0
    with pytest.raises(remote.HostKeyUnknown):
        local_server(sshd, host_key=None).connect()


def test_unreachable_port_is_a_connection_error():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    started = time.monotonic()
    with pytest.raises(remote.ConnectionFailed, match=f"127.0.0.1:{port}.*Unable to connect"):
        make_server(address="127.0.0.1", port=port, host_key=None, trust_on_first_use=True).connect(
            connect_timeout=2, refused_wait=0.6)
    assert time.monotonic() - started >= 0.6  # refused connections were tried again for the whole wait


def test_a_port_that_opens_within_the_wait_is_connected():
    """sshd re-executing on a reload refuses connections for a moment: the connect rides through it."""
    _, host_key = new_ed25519()
    slow = FakeSSHServer(host_key=host_key, authorized=CLIENT_KEY, listen_after=0.8)
    try:
        started = time.monotonic()
        with local_server(slow).connect(refused_wait=10) as conn:
            assert remote.run(conn, ["echo", "in"]).stdout == "in\n"
        assert time.monotonic() - started >= 0.8
    finally:
        slow.close()
    late = FakeSSHServer(host_key=host_key, authorized=CLIENT_KEY, listen_after=5)
    try:
        with pytest.raises(remote.ConnectionFailed):
            local_server(late).connect(refused_wait=0)
    finally:
        late.close()


def test_gather_host_facts_over_ssh(sshd):
    """The facts task end to end (its plain function), against this machine through the SSH server."""
    result = gather_host_facts.fn(local_server(sshd))
    assert isinstance(result, facts.HostFacts)
    assert result.os_id == "debian"
    assert set(result.packages) == set(facts.KEY_PACKAGES)
