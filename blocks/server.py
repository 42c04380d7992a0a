"""The Server block: how pressfleet reaches one server over SSH, and which host key it trusts.

Register the block type once (it then appears in the UI's block catalogue):

    prefect block register -f blocks/server.py

Every value is checked when the block is built, before anything uses it: the address must be a
plain host name or IP address, the user a plain POSIX user name, the port 1-65535, the host key a
public key in known_hosts form. The private key is a secret: the API and UI show it as ********,
and it never appears in the block's repr, in logs or in error messages.
"""

from __future__ import annotations

import logging
import re
from typing import Optional

from fabric import Connection
from prefect.blocks.core import Block
from pydantic import ConfigDict, Field, SecretStr, field_validator

from pressfleet import validate
from pressfleet.ssh import remote

USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


def validate_address(value: str) -> str:
    """A host name (RFC 1123 letters, digits, dashes, dots) or an IPv4/IPv6 address (no scope id); nothing else.

    The same rule as every other host name pressfleet takes: `pressfleet.validate.hostname`.
    """
    if not isinstance(value, str):
        raise ValueError("the address must be text")
    try:
        return validate.hostname(value)
    except validate.InvalidInput:
        if "%" in value:
            raise ValueError(f"{value[:80]!r} is not a host name or IP address: IPv6 scope ids (the %zone part) "
                             "are not accepted") from None
        raise ValueError(
            f"{value[:80]!r} is not a host name or IP address "
            "(letters, digits, dashes and dots only, e.g. web1.example.com or 203.0.113.10)"
        ) from None


def validate_user(value: str) -> str:
    """A POSIX user name: lower-case letter or _, then up to 31 lower-case letters, digits, _ or -."""
    if not isinstance(value, str) or not USER_RE.fullmatch(value):
        shown = value[:40] if isinstance(value, str) else type(value).__name__
        raise ValueError(f"{shown!r} is not a user name (lower-case letters, digits, _ and -, at most 32)")
    return value


def _logger() -> logging.Logger | logging.LoggerAdapter:
    try:
        from prefect import get_run_logger

        return get_run_logger()
    except Exception:  # outside a flow or task run
        return logging.getLogger("pressfleet.server")


class Server(Block):
    """A server pressfleet manages over SSH: its address, login and the host key it must present.

    Connections trust only the pinned host key. Leave the host key empty and switch on trust on
    first use to have the first connection record the key the server presents (check its
    fingerprint against the server's console afterwards).
    """

    _block_type_name = "Server"
    _block_type_slug = "server"
    _description = (
        "A server managed over SSH: address, port, user, private key, and the pinned host key "
        "that every connection checks."
    )

    # Never echo a rejected value (it could be the private key) inside a validation error.
    model_config = ConfigDict(hide_input_in_errors=True)

    address: str = Field(
        ...,
        title="Address",
        description="Host name or IP address of the server, e.g. web1.example.com or 203.0.113.10.",
    )
    port: int = Field(
        22,
        ge=1,
        le=65535,
        title="SSH port",
        description="TCP port sshd listens on (1-65535).",
    )
    user: str = Field(
        "root",
        title="User",
        description="User to log in as; plain POSIX name (lower-case letters, digits, _ and -).",
    )
    private_key: SecretStr = Field(
        ...,
        title="Private key",
        description=(
            "The OpenSSH private key text (Ed25519, ECDSA or RSA, without passphrase), from "
            "-----BEGIN OPENSSH PRIVATE KEY----- to the END line. Stored as a secret."
        ),
    )
    host_key: Optional[str] = Field(
        None,
        title="Pinned host key",
        description=(
            "The server's public host key as in known_hosts: key type and base64, e.g. "
            "'ssh-ed25519 AAAAC3Nz...' (from /etc/ssh/ssh_host_ed25519_key.pub on the server). "
            "Connections to a server presenting any other key are refused."
        ),
    )
    trust_on_first_use: bool = Field(
        False,
        title="Trust on first use",
        description=(
            "If no host key is pinned, accept the key the server presents on the first connection "
            "and pin it in this block. Leave off unless the network path to the server is trusted."
        ),
    )
    max_operations: int = Field(
        2,
        ge=1,
        le=64,
        title="Operations at once",
        description=(
            "At most this many pressfleet runs (backups, restores, restore-tests, provisionings, binary-log "
            "shipping) work on this server at once, whichever worker runs them; the others wait their turn "
            "(a Prefect global concurrency limit pressfleet-host-<address>)."
        ),
    )
    ssh_group: str = Field(
        "pressfleet-ssh",
        title="SSH login group",
        description=(
            "sshd lets members of this group log in (AllowGroups). Provisioning creates it and adds the user above "
            "and every account in 'Human SSH accounts' to it."
        ),
    )
    ssh_admins: list[str] = Field(
        default_factory=list,
        title="Human SSH accounts",
        description=(
            "Existing accounts on the server (people, deploy users) that keep SSH access: each joins the SSH "
            "login group. An account with SSH keys that no allowed group covers makes provisioning stop "
            "before sshd changes, naming it."
        ),
    )
    ssh_allow_groups: list[str] = Field(
        default_factory=lambda: ["sudo"],
        title="Other groups allowed to log in",
        description=(
            "Groups whose members may also log in over SSH. Default: sudo, Debian's administrators' group, so "
            "the server's existing admins are never locked out. Empty: the SSH login group alone."
        ),
    )

    @field_validator("address", mode="before")
    @classmethod
    def _check_address(cls, value):
        return validate_address(value.strip() if isinstance(value, str) else value)

    @field_validator("user", mode="before")
    @classmethod
    def _check_user(cls, value):
        return validate_user(value)

    @field_validator("ssh_group", mode="before")
    @classmethod
    def _check_ssh_group(cls, value):
        return validate_user(value)

    @field_validator("ssh_admins", "ssh_allow_groups", mode="before")
    @classmethod
    def _check_names(cls, value):
        if not isinstance(value, (list, tuple)):
            raise ValueError("a list of account or group names")
        names = [validate_user(v) for v in value]
        if len(set(names)) != len(names):
            raise ValueError("names must not repeat")
        return names

    def ssh_login_groups(self) -> list[str]:
        """The groups sshd allows (AllowGroups): the SSH login group first, then the other allowed groups."""
        return list(dict.fromkeys([self.ssh_group, *self.ssh_allow_groups]))

    @field_validator("port", mode="before")
    @classmethod
    def _check_port(cls, value):
        if isinstance(value, bool):
            raise ValueError("the port must be a number from 1 to 65535")
        return value

    @field_validator("host_key", mode="before")
    @classmethod
    def _check_host_key(cls, value):
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        try:
            return remote.normalize_host_key(value)
        except remote.InvalidHostKey as exc:
            raise ValueError(str(exc)) from None

    @field_validator("private_key", mode="after")
    @classmethod
    def _check_private_key(cls, value: SecretStr):
        if "PRIVATE KEY-----" not in value.get_secret_value():
            raise ValueError("the private key must be OpenSSH private key text (a '-----BEGIN ... PRIVATE KEY-----' block)")
        return value

    def target(self) -> str:
        """user@address:port, for messages."""
        return f"{self.user}@{self.address}:{self.port}"

    def fingerprint(self) -> str | None:
        """SHA256 fingerprint of the pinned host key (as `ssh-keygen -l` shows it), or None if none is pinned."""
        return remote.fingerprint(self.host_key) if self.host_key else None

    def connect(self, connect_timeout: float = remote.DEFAULT_CONNECT_TIMEOUT,
                refused_wait: float = remote.DEFAULT_REFUSED_WAIT) -> Connection:
        """Open an SSH connection that trusts only the pinned host key; close it when done.

        With no pinned key and trust on first use on, the presented key is pinned in this block
        and, if the block is saved under a name, the block is saved again with it. Raises a
        pressfleet.ssh.remote.RemoteError (HostKeyUnknown, HostKeyMismatch, ...) otherwise.
        """
        connected = remote.connect(
            self.address,
            port=self.port,
            user=self.user,
            private_key=self.private_key.get_secret_value(),
            host_key=self.host_key,
            trust_on_first_use=self.trust_on_first_use,
            connect_timeout=connect_timeout,
            refused_wait=refused_wait,
        )
        if connected.learned_host_key:
            self._pin_learned_key(connected.learned_host_key)
        return connected.connection

    def _pin_learned_key(self, key_line: str) -> None:
        self.host_key = key_line
        fp = remote.fingerprint(key_line)
        log = _logger()
        name = self._block_document_name
        if name and not self._is_anonymous:
            self.save(name, overwrite=True)
            log.warning(
                "Trusted %s's host key %s on first use and pinned it in Server block %r; "
                "check that fingerprint on the server's console.", self.address, fp, name,
            )
        else:
            log.warning(
                "Trusted %s's host key %s on first use for this run only: the Server block is not "
                "saved under a name, so the key is not stored.", self.address, fp,
            )
