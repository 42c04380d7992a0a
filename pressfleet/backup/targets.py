"""What the backup flows work on when a run leaves a choice empty (the embedded defaults).

- storage: the Local Storage block `local-backups`, a folder in the project's state directory,
  created on first use (`make demo` and `make test` create it too);
- encryption: the Secret block `pressfleet-backup-key` if a person created one, else none;
- sites: every saved WordPress Site block that names its server.
"""

from __future__ import annotations

from typing import Optional

from pressfleet.paths import state_dir
from pressfleet.validate import InvalidInput

DEFAULT_STORAGE_BLOCK = "local-backups"
DEFAULT_KEY_BLOCK = "pressfleet-backup-key"


def default_storage():
    """The `local-backups` Local Storage block (created, with its folder, if missing)."""
    from blocks.storage import LocalStorage

    try:
        block = LocalStorage.load(DEFAULT_STORAGE_BLOCK)
    except ValueError:
        folder = state_dir() / "backups"
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        block = LocalStorage(path=str(folder))
        block.save(DEFAULT_STORAGE_BLOCK, overwrite=True)
    return block


def storage_block(storage=None):
    return storage if storage is not None else default_storage()


def encryption_secret(key_block=None) -> Optional[str]:
    """The key text: from the given Secret block, else from `pressfleet-backup-key` if it exists."""
    from prefect.blocks.system import Secret

    from pressfleet.backup.crypto import check_secret

    if key_block is None:
        try:
            key_block = Secret.load(DEFAULT_KEY_BLOCK)
        except ValueError:
            return None
    value = key_block.get()
    if not isinstance(value, str):
        raise InvalidInput("the backup encryption key Secret block must hold text")
    return check_secret(value)


def saved_sites() -> list:
    """Every saved WordPress Site block that names its server (what the nightly jobs cover)."""
    from blocks.site import WordPressSite
    from pressfleet.saved import saved_block_names

    found = saved_block_names("wordpress-site")
    sites = [WordPressSite.load(name) for name in found]
    return [s for s in sites if s.server is not None]


def sites_or_all(site=None) -> list:
    if site is not None:
        return [site]
    sites = saved_sites()
    if not sites:
        raise InvalidInput("no saved WordPress Site block names its server: pick a site, or provision one "
                           "(`pressfleet provision` saves the site with its server)")
    return sites


def server_of(site, server=None):
    chosen = server if server is not None else site.server
    if chosen is None:
        raise InvalidInput(f"site {site.name!r} does not name its server: pick one for this run")
    return chosen
