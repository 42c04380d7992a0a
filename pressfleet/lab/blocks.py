"""Server blocks for lab hosts, so flows and the UI can use a host as soon as it is up (and not after it is gone)."""

from __future__ import annotations

from pathlib import Path

from pressfleet.lab.hosts import LabHost


def lab_block_name(host_name: str) -> str:
    return f"lab-{host_name}"


def server_for(host: LabHost):
    """The Server block (unsaved) describing a lab host, its host key pinned."""
    from blocks.server import Server

    return Server(
        address=host.address, port=host.port, user=host.user,
        private_key=Path(host.private_key_path).read_text(), host_key=host.host_key,
    )


def save_lab_server_block(host: LabHost) -> str:
    """Save (or replace) the `lab-NAME` Server block for HOST; returns the block's name."""
    name = lab_block_name(host.name)
    server_for(host).save(name, overwrite=True)
    return name


def delete_lab_server_block(host: LabHost) -> str | None:
    """Delete the `lab-NAME` block `lab up` saved for HOST, if it still describes that very host (same address
    and pinned key: a block a person pointed elsewhere, or another namespace's host of that name, stays).
    Returns the deleted block's name, or None."""
    from prefect.exceptions import ObjectNotFound

    from blocks.server import Server

    name = lab_block_name(host.name)
    try:
        block = Server.load(name)
    except (ValueError, ObjectNotFound):  # no such block
        return None
    if block.address != host.address or block.host_key != host.host_key:
        return None
    Server.delete(name)
    return name


def lab_release_for(server_block_name: str) -> dict | None:
    """Lab hosts cannot reach wordpress.org: for a `lab-*` server, the lab mirror's release (url, sha256)."""
    if not server_block_name.startswith("lab-"):
        return None
    from pressfleet.lab import hosts as lab

    return lab.ensure_mirror()
