"""SSH connections that trust only the server's pinned host key.

Every connection pressfleet opens goes through `connect()`: a fresh paramiko client that knows
exactly one host key (the one pinned on the Server block), loads no ~/.ssh/known_hosts, no
~/.ssh/config, no SSH agent and no key files, and refuses any other key. A server presenting a
different key is refused with `HostKeyMismatch`; a server with no pinned key is refused with
`HostKeyUnknown` unless trust on first use was asked for, in which case the presented key is
accepted once and handed back so the caller can pin it.

The private key is read from text in memory: it is never written to disk, never put on a command
line, never logged and never quoted in an error message.

Every connection opened is counted per host (`connections_opened`), so a test can hold a flow run to its
one connection per host.

`run()` executes one remote command given as a list of arguments, each quoted with shlex, so no
argument is ever interpreted by the remote shell.
"""

from __future__ import annotations

import base64
import binascii
import errno
import io
import math
import re
import shlex
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import NamedTuple

import paramiko
from fabric import Config, Connection
from paramiko.config import SSHConfig

DEFAULT_CONNECT_TIMEOUT = 10.0
CHANNEL_OPEN_TIMEOUT = 30.0
# How long a refused connection is tried again. sshd closes its listening socket for a few
# milliseconds when it re-executes itself on a reload (SIGHUP), and a package upgrade restarts it;
# a step that connects right after either must not fail for that. A port that stays closed fails
# after this long.
DEFAULT_REFUSED_WAIT = 10.0

HOST_KEY_TYPES = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
)
_HOST_KEY_RE = re.compile(
    r"^(?P<type>" + "|".join(re.escape(t) for t in HOST_KEY_TYPES) + r")"
    r"\s+(?P<b64>[A-Za-z0-9+/]+={0,3})(?:\s+\S.*)?$"
)
_STDERR_LIMIT = 4000
_OPENED: Counter[str] = Counter()  # SSH connections opened by this process, per address:port
_OPENED_LOCK = threading.Lock()


def connections_opened(address: str | None = None, port: int = 22) -> int:
    """How many SSH connections this process has opened (to ADDRESS:PORT, or in all)."""
    with _OPENED_LOCK:
        return _OPENED[display_host(address, port)] if address else sum(_OPENED.values())


class RemoteError(Exception):
    """Something went wrong talking to a server; the message is one sentence for the person."""


class HostKeyUnknown(RemoteError):
    """The server presented a host key and none is pinned for it (and trust on first use is off)."""

    def __init__(self, host: str, presented_fingerprint: str):
        self.host = host
        self.presented_fingerprint = presented_fingerprint
        super().__init__(
            f"{host} presented host key {presented_fingerprint} but no host key is pinned for it; "
            "pin that key (after checking it on the server's console) or enable trust on first use."
        )


class HostKeyMismatch(RemoteError):
    """The server presented a host key other than the pinned one: possibly a different machine."""

    def __init__(self, host: str, pinned_fingerprint: str, presented_fingerprint: str):
        self.host = host
        self.pinned_fingerprint = pinned_fingerprint
        self.presented_fingerprint = presented_fingerprint
        super().__init__(
            f"{host} presented host key {presented_fingerprint} but {pinned_fingerprint} is pinned; "
            "refusing to connect (the server was reinstalled, or this is not the same machine)."
        )


class InvalidHostKey(RemoteError, ValueError):
    """A pinned host key text is not a public key in known_hosts form."""


class PrivateKeyError(RemoteError, ValueError):
    """The private key text cannot be read (the message never quotes the key)."""


class AuthenticationFailed(RemoteError):
    """The server did not accept the private key for that user."""


class ConnectionFailed(RemoteError):
    """The server could not be reached or the SSH handshake failed."""


class RemoteCommandError(RemoteError):
    """A remote command exited with a non-zero status.

    Carries `exit_status` and `stderr`; never the command's stdin (where secrets travel) and only
    the program name, not its arguments.
    """

    def __init__(self, host: str, program: str, exit_status: int, stderr: str):
        self.host = host
        self.program = program
        self.exit_status = exit_status
        self.stderr = stderr[-_STDERR_LIMIT:]
        last_line = next((ln.strip() for ln in reversed(stderr.splitlines()) if ln.strip()), "")
        detail = f": {last_line[:300]}" if last_line else " (nothing on stderr)"
        super().__init__(f"{program} on {host} exited with status {exit_status}{detail}")


class RemoteCommandTimeout(RemoteError):
    """A remote command did not finish within its time limit."""

    def __init__(self, host: str, program: str, timeout: float):
        self.host = host
        self.program = program
        self.timeout = timeout
        super().__init__(f"{program} on {host} did not finish within {timeout:g} s and was abandoned")


class Connected(NamedTuple):
    """An open connection, plus the host key line learned by trust on first use (else None)."""

    connection: Connection
    learned_host_key: str | None


# -- host keys -------------------------------------------------------------------------------


def parse_host_key(text: str) -> paramiko.PKey:
    """Read a public host key written as `<type> <base64> [comment]` (known_hosts form)."""
    match = _HOST_KEY_RE.match(text.strip()) if isinstance(text, str) else None
    if not match:
        raise InvalidHostKey(
            "the host key must look like 'ssh-ed25519 AAAA...' (key type, space, base64), "
            f"with key type one of {', '.join(HOST_KEY_TYPES)}"
        )
    key_type = match["type"]
    try:
        blob = base64.b64decode(match["b64"], validate=True)
        key = paramiko.PKey.from_type_string(key_type, blob)
    except (binascii.Error, paramiko.SSHException, ValueError, TypeError) as exc:
        raise InvalidHostKey(f"the host key is not a valid {key_type} public key ({type(exc).__name__})") from None
    if key.get_name() != key_type:
        raise InvalidHostKey(f"the host key says {key_type} but its data is a {key.get_name()} key")
    if key.asbytes() != blob:  # paramiko pads short data with zeros instead of refusing it
        raise InvalidHostKey(f"the host key is not a valid {key_type} public key (truncated or extra data)")
    return key


def host_key_line(key: paramiko.PKey) -> str:
    """The key as `<type> <base64>`, the form pinned on a Server block."""
    return f"{key.get_name()} {key.get_base64()}"


def normalize_host_key(text: str) -> str:
    """Validate a pinned host key and return it as `<type> <base64>` (comment dropped)."""
    return host_key_line(parse_host_key(text))


def fingerprint(key: paramiko.PKey | str) -> str:
    """SHA256 fingerprint as OpenSSH prints it (`SHA256:...`), of a key or a key line."""
    if isinstance(key, str):
        key = parse_host_key(key)
    return key.fingerprint


def display_host(address: str, port: int) -> str:
    """address:port for messages ([address]:port for IPv6)."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _known_hosts_names(address: str, port: int) -> list[str]:
    # paramiko looks a server up as "host" on port 22 and "[host]:port" otherwise.
    return [address] if port == 22 else [f"[{address}]:{port}"]


# -- private key -----------------------------------------------------------------------------

_PRIVATE_KEY_CLASSES = (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey)


def load_private_key(text: str) -> paramiko.PKey:
    """Read an unencrypted OpenSSH/PEM private key (Ed25519, ECDSA or RSA) from text in memory."""
    if not isinstance(text, str) or "PRIVATE KEY-----" not in text:
        raise PrivateKeyError("the private key is not an OpenSSH private key text (no 'PRIVATE KEY' block)")
    for key_class in _PRIVATE_KEY_CLASSES:
        try:
            return key_class.from_private_key(io.StringIO(text))
        except paramiko.PasswordRequiredException:
            raise PrivateKeyError(
                "the private key is protected by a passphrase; give an unencrypted key"
            ) from None
        except (paramiko.SSHException, ValueError, TypeError, IndexError):
            continue
    raise PrivateKeyError("the private key could not be read as an unencrypted Ed25519, ECDSA or RSA key")


# -- policies --------------------------------------------------------------------------------


class RejectUnpinnedHostKey(paramiko.RejectPolicy):
    """paramiko's RejectPolicy, raising HostKeyUnknown with the presented key's fingerprint."""

    def __init__(self, display_host: str):
        self.shown_host = display_host

    def missing_host_key(self, client, hostname, key):
        raise HostKeyUnknown(self.shown_host, key.fingerprint)


class TrustOnFirstUse(paramiko.MissingHostKeyPolicy):
    """Accept the first key a server presents and remember it, so the caller can pin it.

    Used only when no key is pinned and trust on first use was asked for explicitly.
    """

    def __init__(self) -> None:
        self.presented_key: paramiko.PKey | None = None

    def missing_host_key(self, client, hostname, key):
        self.presented_key = key


# -- connections -----------------------------------------------------------------------------


def _fabric_config() -> Config:
    # lazy=True: no /etc/fabric.yml or ~/.fabric.yml; an explicit empty SSHConfig and
    # load_ssh_configs=False: nothing from ~/.ssh/config or /etc/ssh/ssh_config can redirect
    # the host, port, user, identity or proxy.
    return Config(
        lazy=True,
        ssh_config=SSHConfig(),
        overrides={"load_ssh_configs": False, "forward_agent": False, "gateway": None},
    )


def build_connection(
    address: str,
    *,
    port: int = 22,
    user: str = "root",
    private_key: str,
    host_key: str | None,
    trust_on_first_use: bool = False,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
) -> tuple[Connection, TrustOnFirstUse | None]:
    """A not-yet-opened fabric Connection whose client trusts only `host_key`.

    Returns the connection and, when trust on first use applies, the policy that will record the
    presented key.
    """
    pkey = load_private_key(private_key)
    conn = Connection(
        host=address,
        user=user,
        port=port,
        config=_fabric_config(),
        gateway=False,
        forward_agent=False,
        connect_timeout=max(1, math.ceil(connect_timeout)),
        connect_kwargs={"pkey": pkey, "allow_agent": False, "look_for_keys": False},
    )
    # Replace fabric's own client (which accepts unknown keys) with one that knows only the pin.
    client = paramiko.SSHClient()
    shown = display_host(address, port)
    tofu: TrustOnFirstUse | None = None
    if host_key:
        pinned = parse_host_key(host_key)
        for name in _known_hosts_names(address, port):
            client.get_host_keys().add(name, pinned.get_name(), pinned)
        client.set_missing_host_key_policy(RejectUnpinnedHostKey(shown))
    elif trust_on_first_use:
        tofu = TrustOnFirstUse()
        client.set_missing_host_key_policy(tofu)
    else:
        client.set_missing_host_key_policy(RejectUnpinnedHostKey(shown))
    conn.client = client
    return conn, tofu


def connect(
    address: str,
    *,
    port: int = 22,
    user: str = "root",
    private_key: str,
    host_key: str | None,
    trust_on_first_use: bool = False,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    refused_wait: float = DEFAULT_REFUSED_WAIT,
) -> Connected:
    """Open an SSH connection that trusts only the pinned host key.

    With no `host_key` and `trust_on_first_use=True`, the presented key is accepted and returned
    as `learned_host_key` ("<type> <base64>") for the caller to pin. Raises HostKeyUnknown,
    HostKeyMismatch, AuthenticationFailed or ConnectionFailed (all RemoteError).

    A refused connection (nothing listening yet: sshd re-executing on a reload, or restarting) is
    tried again for up to `refused_wait` seconds; an unreachable host or a timeout is not.
    """
    shown = display_host(address, port)
    deadline = time.monotonic() + refused_wait
    pause = 0.05
    while True:
        conn, tofu = build_connection(
            address,
            port=port,
            user=user,
            private_key=private_key,
            host_key=host_key,
            trust_on_first_use=trust_on_first_use,
            connect_timeout=connect_timeout,
        )
        try:
            conn.open()
            break
        except BaseException as exc:
            conn.client.close()
            remaining = deadline - time.monotonic()
            if not _refused(exc) or remaining <= 0:
                raise _open_error(exc, user, shown) from None
            time.sleep(min(pause, remaining))
            pause = min(pause * 2, 1.0)
    with _OPENED_LOCK:
        _OPENED[shown] += 1
    learned = None
    if tofu is not None:
        presented = tofu.presented_key or conn.transport.get_remote_server_key()
        learned = host_key_line(presented)
    return Connected(conn, learned)


def _refused(exc: BaseException) -> bool:
    """Nothing listened on the port (every address paramiko tried answered ECONNREFUSED)."""
    return isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError) and all(
        getattr(e, "errno", None) == errno.ECONNREFUSED for e in exc.errors.values())


def _reason(exc: BaseException) -> str:
    return str(exc).strip() or type(exc).__name__


def _open_error(exc: BaseException, user: str, shown: str) -> BaseException:
    """The RemoteError that says why opening a connection failed (other exceptions unchanged)."""
    if isinstance(exc, paramiko.BadHostKeyException):
        return HostKeyMismatch(shown, exc.expected_key.fingerprint, exc.key.fingerprint)
    if isinstance(exc, paramiko.AuthenticationException):
        return AuthenticationFailed(
            f"{user}@{shown} did not accept the private key (check the user and that the "
            "public key is in that user's authorized_keys)"
        )
    if isinstance(exc, (OSError, socket.timeout, paramiko.SSHException, EOFError)):
        return ConnectionFailed(f"could not open SSH to {shown}: {_reason(exc)}")
    return exc


@dataclass(frozen=True)
class CommandResult:
    """What a remote command did: its exit status and captured output (text)."""

    command: list[str]
    exited: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exited == 0


def run(
    conn: Connection,
    command_args: list[str],
    *,
    stdin: str | bytes | None = None,
    check: bool = True,
    timeout: float | None = None,
) -> CommandResult:
    """Run one command on the server, every argument quoted with shlex; return its CommandResult.

    `stdin` is written to the command's standard input, which is then closed (so a command that
    reads stdin sees end of file); secrets belong there, never in `command_args`. Output is
    captured, not printed. With `check=True` a non-zero exit raises RemoteCommandError carrying
    the exit status and stderr; past `timeout` seconds, RemoteCommandTimeout.
    """
    if not command_args or not all(isinstance(a, str) for a in command_args):
        raise ValueError("command_args must be a non-empty list of strings")
    command = shlex.join(command_args)
    host = display_host(conn.host, conn.port)
    channel = open_channel(conn)
    data = stdin.encode() if isinstance(stdin, str) else (stdin or b"")
    out: list[bytes] = []
    err: list[bytes] = []
    try:
        channel.exec_command(command)
        # Feed stdin and drain stdout/stderr at the same time, so neither side can fill a window
        # and wait for the other.
        threads = [
            threading.Thread(target=_feed, args=(channel, data), daemon=True),
            threading.Thread(target=_drain, args=(channel.recv, out), daemon=True),
            threading.Thread(target=_drain, args=(channel.recv_stderr, err), daemon=True),
        ]
        for thread in threads:
            thread.start()
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                raise RemoteCommandTimeout(host, command_args[0], timeout or 0)
        remaining = 30.0 if deadline is None else max(0.0, deadline - time.monotonic())
        if not channel.status_event.wait(remaining):
            raise RemoteCommandTimeout(host, command_args[0], timeout or remaining)
        exited = channel.recv_exit_status()
    finally:
        channel.close()
    result = CommandResult(
        command=list(command_args),
        exited=exited,
        stdout=b"".join(out).decode("utf-8", errors="replace"),
        stderr=b"".join(err).decode("utf-8", errors="replace"),
    )
    if check and result.exited != 0:
        raise RemoteCommandError(host, command_args[0], result.exited, result.stderr)
    return result


def open_channel(conn: Connection, *, wait: float = 10.0) -> paramiko.Channel:
    """A new session channel on the connection (opened if need be).

    sshd caps the sessions of one connection (MaxSessions: 2 on a hardened host) and frees a closed one a
    moment after the client closed it, so a refusal ("Connect failed") is retried until `wait` runs out.
    """
    conn.open()  # no-op when already connected
    deadline = time.monotonic() + wait
    delay = 0.02
    while True:
        try:
            # A loaded host answers a channel request late (a fleet run on 2 cores: one backup's channel took
            # over 10 s); the request itself is cheap, so it gets more time than a new connection does.
            return conn.transport.open_session(timeout=CHANNEL_OPEN_TIMEOUT)
        except paramiko.ChannelException:
            if time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


def _feed(channel: paramiko.Channel, data: bytes) -> None:
    try:
        if data:
            channel.sendall(data)
        channel.shutdown_write()
    except (OSError, EOFError, paramiko.SSHException):
        pass  # the command exited without reading all of its input


def _drain(recv, sink: list[bytes]) -> None:
    while True:
        chunk = recv(65536)
        if not chunk:
            return
        sink.append(chunk)
