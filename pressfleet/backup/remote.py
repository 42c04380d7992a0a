"""The host side of backups: the remote scripts, and root-only staging folders on the host."""

from __future__ import annotations

from fabric import Connection

from pressfleet.backup.index import parse_tree_listing
from pressfleet.backup.streams import remote_reader
from pressfleet.paths import TEMPLATES
from pressfleet.ssh.remote import run


def script(name: str) -> str:
    """The text of a remote script (pressfleet/templates/scripts), run as `sh -c TEXT sh ARGS...`."""
    return (TEMPLATES / "scripts" / name).read_text()


def bytes_of(conn: Connection, argv: list[str], stdin: bytes | None = None) -> bytes:
    with remote_reader(conn, argv, stdin=stdin) as reader:
        return reader.read()


STAGING_ROOT = "/var/lib/pressfleet"  # root's own: binary logs are staged on disk here, never in /run (RAM)


def make_staging(conn: Connection, parent: str, prefix: str, need: int = 0) -> str:
    """A fresh root-only folder (mktemp -d) in PARENT, a folder owned by root; refuses when PARENT's file
    system has less than NEED bytes free."""
    return run(conn, ["sh", "-c", script("staging_dir.sh"), "sh", parent, prefix, str(max(0, int(need)))]
               ).stdout.strip()


def binlog_staging(conn: Connection, need: int = 0) -> str:
    run(conn, ["install", "-d", "-m", "700", "-o", "root", "-g", "root", STAGING_ROOT])
    return make_staging(conn, STAGING_ROOT, "binlogs", need + (64 << 20))


def tree_listing(conn: Connection, base: str, hashes: bool) -> dict[str, tuple[str, int, str]]:
    """Every entry of BASE but wp-admin and wp-includes: path -> (type, size, sha256 or "")."""
    return parse_tree_listing(bytes_of(conn, ["sh", "-c", script("restore_tree.sh"), "sh", base,
                                               "1" if hashes else "0"]))

