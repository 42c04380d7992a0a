"""Server blocks for lab hosts, so flows and the UI can use a host as soon as it is up."""

from __future__ import annotations

from pathlib import Path

from pressfleet.lab import LabHost


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
