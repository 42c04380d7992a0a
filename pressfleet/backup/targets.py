"""What the backup flows work on when a run leaves a choice empty (the embedded defaults).

- storage: the Local Storage block `local-backups`, a folder in the project's state directory,
  created on first use (`make demo` and `make test` create it too);
- encryption: the Secret block `pressfleet-backup-key` (`make demo` creates one); without it a run is
  refused, unless the storage block says `encryption: none` (plaintext on purpose);
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


def saved_default_storage():
    """The `local-backups` block if one is saved (None if not: nothing is created)."""
    from blocks.storage import LocalStorage

    try:
        return LocalStorage.load(DEFAULT_STORAGE_BLOCK)
    except ValueError:
        return None


def storage_block(storage=None):
    return storage if storage is not None else default_storage()


def missing_key_message(storage=None) -> str:
    name = getattr(storage, "_block_document_name", None)
    where = f"storage block {name!r}" if name else "the storage block"
    return (f"No backup encryption key: create the Secret block {DEFAULT_KEY_BLOCK!r} holding "
            "`pfk1:` and 32 random bytes in base64 (`echo pfk1:$(openssl rand -base64 32)`, or run `make demo`), "
            f"or set `encryption: none` on {where} to keep its backups in plaintext on purpose.")


def encryption_secret(key_block=None, storage=None) -> Optional[str]:
    """The key text for a run on STORAGE: the given Secret block's, else `pressfleet-backup-key`'s.

    No key is refused (InvalidInput, one sentence naming the block to create), unless the storage block
    says `encryption: none`: then the run is in plaintext (None) unless a key block was given for it."""
    from prefect.blocks.system import Secret

    from pressfleet.backup.crypto import check_secret

    plaintext_ok = getattr(storage, "encryption", "required") == "none"
    if key_block is None:
        if plaintext_ok:
            return None
        try:
            key_block = Secret.load(DEFAULT_KEY_BLOCK)
        except ValueError:
            raise InvalidInput(missing_key_message(storage)) from None
    value = key_block.get()
    if not isinstance(value, str):
        raise InvalidInput("the backup encryption key Secret block must hold text")
    return check_secret(value)


def ensure_key_block(log=print) -> str:
    """Create the `pressfleet-backup-key` Secret block with a fresh random key if it is missing (`make demo`).
    Returns a sentence saying where the key is (never the key itself)."""
    from prefect.blocks.system import Secret

    from pressfleet.backup.crypto import new_key_text

    try:
        Secret.load(DEFAULT_KEY_BLOCK)
        return f"backup key: Secret block {DEFAULT_KEY_BLOCK!r} (already there)"
    except ValueError:
        Secret(value=new_key_text()).save(DEFAULT_KEY_BLOCK)
        return (f"backup key: created Secret block {DEFAULT_KEY_BLOCK!r} (random 32 bytes; keep a copy elsewhere: "
                "without it no backup can be restored)")


def saved_sites() -> list:
    """Every saved WordPress Site block that names its server (what the nightly jobs cover)."""
    from blocks.site import WordPressSite
    from pressfleet.fleet.saved import saved_block_names

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
