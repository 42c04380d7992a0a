"""`pressfleet server add|list|remove`: the fleet's servers from a terminal.

`server add` checks every input first (one sentence, nothing contacted, nothing saved), then logs in once to
learn or check the host key it pins (trust on first use fetches the key the server presents and says so; a
given `--host-key` must be the one the server presents, else nothing is saved), saves the Server block with
the private key as its secret, and runs the `host-facts` flow on it. `server remove` refuses while a saved
site runs on the server (same address and port), naming the sites.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

import typer

from pressfleet import validate
from pressfleet.cli.common import fail as _fail
from pressfleet.validate import InvalidInput

MAX_KEY_FILE_BYTES = 64 * 1024  # an OpenSSH private key is a few KiB


@dataclass(frozen=True)
class ServerSpec:
    """What `server add` was asked, checked (the private key text is never shown in a repr)."""

    name: str
    address: str
    port: int
    user: str
    key_file: str
    private_key: str = field(repr=False)
    host_key: Optional[str]
    trust_on_first_use: bool


def read_key_file(path: str) -> str:
    """The private key text of PATH: a regular file, readable by its owner alone, holding an unencrypted
    OpenSSH key pressfleet can use. Raises InvalidInput with one sentence."""
    from pressfleet.ssh import remote

    try:
        st = os.stat(path)
    except OSError as exc:
        raise InvalidInput(f"--key-file {path!r} cannot be read ({exc.strerror}).") from None
    if not stat.S_ISREG(st.st_mode):
        raise InvalidInput(f"--key-file {path!r} is not a regular file.")
    if st.st_mode & 0o077:
        raise InvalidInput(f"--key-file {path!r} is readable by others (mode {stat.S_IMODE(st.st_mode):04o}): "
                           f"chmod 600 it first, as ssh requires.")
    if st.st_size > MAX_KEY_FILE_BYTES:
        raise InvalidInput(f"--key-file {path!r} is too large to be a private key.")
    try:
        text = Path(path).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        raise InvalidInput(f"--key-file {path!r} is not an OpenSSH private key (not readable ASCII text).") from None
    try:
        remote.load_private_key(text)
    except remote.PrivateKeyError as exc:
        raise InvalidInput(f"--key-file {path!r}: {exc}.") from None
    return text


def parse_add(name: str, address: str, port: int, user: str, key_file: str, host_key: Optional[str],
              trust_on_first_use: bool, *, read_key=read_key_file) -> ServerSpec:
    """Check `server add`'s inputs, in order, before anything is contacted; raises InvalidInput."""
    from blocks.server import validate_address, validate_user
    from pressfleet.ssh import remote

    name = validate.block_name(name, "server")
    try:
        address = validate_address(address)
        user = validate_user(user)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    port = validate.port(port)
    if bool(host_key) == bool(trust_on_first_use):
        raise InvalidInput("give the server's host key with --host-key \"ssh-ed25519 AAAA...\", or "
                           "--trust-on-first-use to pin the key it presents (one of the two).")
    if host_key:
        try:
            host_key = remote.normalize_host_key(host_key)
        except remote.InvalidHostKey as exc:
            raise InvalidInput(f"--host-key: {exc}.") from None
    text = read_key(key_file)
    return ServerSpec(name, address, port, user, key_file, text, host_key or None, bool(trust_on_first_use))


@dataclass(frozen=True)
class SiteOnServer:
    """A saved site and where it runs (what list and remove need of it)."""

    block: str
    name: str
    domain: str
    address: Optional[str]
    port: Optional[int]
    server: object = field(default=None, repr=False, compare=False)  # the site's Server block, when loaded


def sites_using(address: str, port: int, sites: Iterable[SiteOnServer]) -> list[SiteOnServer]:
    """The saved sites that run on ADDRESS:PORT (a site names its server by value, so the address is what
    ties it to a Server block saved under any name)."""
    return [s for s in sites if s.address == address and s.port == port]


def saved_sites_with_servers() -> tuple[list[SiteOnServer], list[str]]:
    """Every saved WordPress Site block with its server's address and port, and one note per block that
    could not be loaded."""
    from blocks.site import WordPressSite
    from pressfleet.fleet.saved import saved_block_names

    found, notes = [], []
    for block in saved_block_names("wordpress-site"):
        try:
            site = WordPressSite.load(block)
        except ValueError as exc:
            notes.append(f"site block {block!r} cannot be loaded: {str(exc).splitlines()[0]}")
            continue
        server = site.server
        found.append(SiteOnServer(block, site.name, site.domain, server.address if server else None,
                                  server.port if server else None, server))
    return found, notes


def server_rows(servers: Iterable[tuple[str, object]], sites: list[SiteOnServer]) -> list[dict]:
    """One row per Server block (name, address, port, user, fingerprint, the sites on it), sorted by name."""
    rows = []
    for name, server in sorted(servers, key=lambda x: x[0]):
        on = sites_using(server.address, server.port, sites)
        rows.append({"name": name, "address": server.address, "port": server.port, "user": server.user,
                     "fingerprint": server.fingerprint() or "(none pinned)",
                     "sites": [s.domain for s in on]})
    return rows


def format_table(rows: list[dict], columns: list[str]) -> str:
    """A plain text table, one line per row, columns padded (pure)."""
    def cell(v) -> str:
        return ", ".join(v) if isinstance(v, list) else str(v)

    if not rows:
        return ""
    widths = {c: max(len(c), *(len(cell(r[c])) for r in rows)) for c in columns}
    lines = ["  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip()]
    lines += ["  ".join(cell(r[c]).ljust(widths[c]) for c in columns).rstrip() for r in rows]
    return "\n".join(lines)


def facts_summary(facts) -> str:
    """host-facts' result in one line: OS, kernel, CPUs, memory, root disk."""
    gib = 2 ** 30
    root = facts.root_disk()
    disk = f", / {root.size_bytes / gib:.1f} GiB ({root.avail_bytes / gib:.1f} free)" if root else ""
    return (f"{facts.hostname}: {facts.os_pretty_name}, kernel {facts.kernel}, {facts.cpus} CPUs, "
            f"{facts.mem_total_bytes / gib:.1f} GiB RAM{disk}")


def learn_host_key(spec: ServerSpec) -> tuple[str, bool]:
    """Log in once: (the host key line to pin, whether it was trusted on first use). With --host-key the
    server must present that key (pressfleet.ssh.remote refuses any other); otherwise the key the server
    presents (paramiko's Transport.get_remote_server_key) is what is pinned."""
    from pressfleet.ssh import remote

    connected = remote.connect(spec.address, port=spec.port, user=spec.user, private_key=spec.private_key,
                               host_key=spec.host_key, trust_on_first_use=spec.trust_on_first_use,
                               connect_timeout=15, refused_wait=0)
    try:
        key = connected.learned_host_key or remote.host_key_line(connected.connection.transport.get_remote_server_key())
    finally:
        connected.connection.close()
    if spec.host_key and key != spec.host_key:  # remote.connect already refused this; kept as the rule
        raise remote.HostKeyMismatch(remote.display_host(spec.address, spec.port), remote.fingerprint(spec.host_key),
                                     remote.fingerprint(key))
    return key, connected.learned_host_key is not None


def _load_server(name: str):
    from blocks.server import Server

    try:
        return Server.load(validate.block_name(name, "server"))
    except InvalidInput as exc:
        _fail(str(exc))
    except ValueError:
        _fail(f"no Server block {name!r} (pressfleet server list shows them).")


def _server_exists(name: str) -> bool:
    from pressfleet.fleet.saved import saved_block_names

    return name in saved_block_names("server")


def register(app: typer.Typer) -> None:
    server_app = typer.Typer(help="The servers of the fleet (Server blocks).", no_args_is_help=True)
    app.add_typer(server_app, name="server")

    @server_app.command("add")
    def add(name: str = typer.Argument(..., help="Block name: lower-case letters, digits and dashes."),
            address: str = typer.Option(..., "--address", help="Host name or IP address."),
            port: int = typer.Option(22, "--port", help="SSH port."),
            user: str = typer.Option("root", "--user", help="User to log in as."),
            key_file: str = typer.Option(..., "--key-file", help="The OpenSSH private key file (mode 0600)."),
            host_key: str = typer.Option(None, "--host-key", help="The server's host key, 'ssh-ed25519 AAAA...' "
                                         "(/etc/ssh/ssh_host_ed25519_key.pub on the server)."),
            trust_on_first_use: bool = typer.Option(False, "--trust-on-first-use",
                                                    help="Pin the key the server presents now (check its "
                                                         "fingerprint on the server's console).")) -> None:
        """Save a server: pin its host key, save the Server block, run host-facts on it."""
        from blocks.server import Server
        from pressfleet.ssh import remote

        try:
            spec = parse_add(name, address, port, user, key_file, host_key, trust_on_first_use)
            if _server_exists(spec.name):
                raise InvalidInput(f"a Server block {spec.name!r} is already saved: remove it first "
                                   f"(pressfleet server remove {spec.name}) or pick another name.")
        except InvalidInput as exc:
            _fail(f"refused before anything ran: {exc}")
        try:
            key, learned = learn_host_key(spec)
        except remote.RemoteError as exc:
            _fail(f"nothing saved: {exc}")
        fp = remote.fingerprint(key)
        if learned:
            typer.echo(f"{spec.address}:{spec.port} presented host key {fp}: pinned on trust on first use "
                       f"(check that fingerprint on the server's console)")
        else:
            typer.echo(f"{spec.address}:{spec.port} presented the given host key {fp}: pinned")
        block = Server(address=spec.address, port=spec.port, user=spec.user, private_key=spec.private_key,
                       host_key=key, trust_on_first_use=False)
        block.save(spec.name)
        typer.echo(f"saved Server block {spec.name!r} ({block.target()}, host key {fp})")
        from flows.host_facts import host_facts

        try:
            facts = host_facts(server=Server.load(spec.name))
        except Exception as exc:  # noqa: BLE001 - the block is saved; say what failed about the facts
            _fail(f"server {spec.name!r} is saved but host-facts failed: {exc}")
        typer.echo(facts_summary(facts))

    @server_app.command("list")
    def list_servers(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
        """The saved servers: name, address, port, user, pinned fingerprint, the sites on each."""
        import json

        from blocks.server import Server
        from pressfleet.fleet.saved import saved_block_names

        servers, notes = [], []
        for n in saved_block_names("server"):
            try:
                servers.append((n, Server.load(n)))
            except ValueError as exc:
                notes.append(f"server block {n!r} cannot be loaded: {str(exc).splitlines()[0]}")
        sites, site_notes = saved_sites_with_servers()
        rows = server_rows(servers, sites)
        if as_json:
            typer.echo(json.dumps(rows, indent=2))
        else:
            typer.echo(format_table(rows, ["name", "address", "port", "user", "fingerprint", "sites"])
                       or "no saved servers (pressfleet server add NAME ... saves one)")
        for note in notes + site_notes:
            typer.echo(f"note: {note}", err=True)

    @server_app.command("remove")
    def remove(name: str = typer.Argument(..., help="Server block name.")) -> None:
        """Delete a Server block; refused while a saved site runs on that server."""
        from blocks.server import Server

        server = _load_server(name)
        sites, _ = saved_sites_with_servers()
        on = sites_using(server.address, server.port, sites)
        if on:
            _fail(f"server {name!r} ({server.address}:{server.port}) is used by "
                  f"{', '.join(f'{s.domain} (block {s.block!r})' for s in on)}: remove those sites first "
                  f"(pressfleet site remove SITE); nothing was removed.")
        Server.delete(name)
        typer.echo(f"removed Server block {name!r} ({server.target()})")
