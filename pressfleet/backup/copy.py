"""Backups copied to a second storage (geographic redundancy), every object checked against its manifest.

A backup is copied with the chain it restores through (its full backup and the incrementals before it), each
object streamed from one store to the other (bounded memory) and its sha256 and size compared with what the
manifest recorded; the manifest goes last, so a copy cut short is never listed as a backup on the target (and
the next run completes it). The copy earns its own restore-test proof: the source's markers are not copied.
A passphrase-keyed repository's scrypt settings go along (put-if-absent), so the same key opens both; a target
that already holds other settings is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from pressfleet.backup import catalog
from pressfleet.backup.crypto import REPOSITORY_KEY
from pressfleet.storage.base import ObjectNotFound
from pressfleet.validate import InvalidInput


class CopyMismatch(RuntimeError):
    """An object arrived on the target with other bytes than the manifest says: it was deleted there."""


@dataclass
class CopyReport:
    site: str
    copied: list[str] = field(default_factory=list)  # backup ids copied this run
    present: list[str] = field(default_factory=list)  # already on the target, checked
    objects: int = 0
    bytes: int = 0
    problems: list[str] = field(default_factory=list)


def _same_repository(src, dst) -> None:
    try:
        conf = src.get_bytes(REPOSITORY_KEY)
    except ObjectNotFound:
        return  # a random-key (pfk1:) or unencrypted repository: nothing to carry over
    dst.put_if_absent(REPOSITORY_KEY, conf)
    if dst.get_bytes(REPOSITORY_KEY) != conf:
        raise InvalidInput(f"{dst.describe()} already holds another repository's key settings: copy to an empty "
                           "storage (or prefix)")


def _copy_object(src, dst, key: str, size: int, sha256: Optional[str], report: CopyReport) -> None:
    with src.open_read(key) as stream:
        got = dst.put_stream(key, stream, size_hint=size)
    if (sha256 and got.sha256 != sha256) or got.size != size:
        dst.delete(key)
        raise CopyMismatch(f"{key}: copied {got.size} bytes with sha256 {got.sha256}, the source has {size} bytes "
                           f"with sha256 {sha256}: deleted on the target")
    report.objects += 1
    report.bytes += got.size


def _present(dst, manifest) -> bool:
    """The copy of MANIFEST is complete on the target: its manifest and every part with the recorded size."""
    try:
        dst.stat(catalog.manifest_key(manifest.site, manifest.backup_id))
        return all(dst.stat(p.key).size == p.size for p in manifest.parts)
    except ObjectNotFound:
        return False


def copy_site(src, dst, site: str, secret=None, *, verified_only: bool = True) -> CopyReport:
    """Copy SITE's backups (the verified ones with their chains, or all) from SRC to DST."""
    report = CopyReport(site)
    _same_repository(src, dst)
    entries = catalog.list_backups(src, site, secret)
    report.problems += entries.problems
    known = {e.manifest.backup_id: e.manifest for e in entries}
    wanted: dict[str, object] = {}
    for e in entries:
        if verified_only and not e.verified:
            continue
        for m in catalog.chain(src, site, e.manifest, known=known, secret=secret):
            wanted[m.backup_id] = m
    for backup_id, m in sorted(wanted.items()):
        if _present(dst, m):
            report.present.append(backup_id)
            continue
        prefix = catalog.backup_prefix(site, backup_id)
        mkey = catalog.manifest_key(site, backup_id)
        parts = {p.key: p for p in m.parts}
        for obj in src.list(prefix):
            if obj.key == mkey:
                continue
            part = parts.get(obj.key)
            _copy_object(src, dst, obj.key, part.size if part else obj.size, part.sha256 if part else obj.sha256,
                         report)
        raw = src.get_bytes(mkey)
        dst.put_bytes(mkey, raw)
        report.copied.append(backup_id)
    # What the target now lists must read back (and, with the key, authenticate) like the source's.
    listed = {e.manifest.backup_id for e in catalog.list_backups(dst, site, secret)}
    missing = sorted(set(wanted) - listed)
    if missing:
        report.problems.append(f"the target does not list {', '.join(missing)} after the copy")
    return report
