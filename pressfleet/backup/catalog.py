"""Where backups live in storage, and the index of them (the storage itself is the catalogue).

    <site>/backups/<backup-id>/manifest.json      written last: a backup without it is not complete
    <site>/backups/<backup-id>/<part>.<ext>       database.sql.zst, files.tar.zst, config.tar.zst,
                                                  index.jsonl.zst; `.pfenc` appended when encrypted
    <site>/verified/<backup-id>.json              a restore-test's proof (time, duration, target)
    <site>/binlogs/<binlog-name>.zst[.pfenc]      MariaDB binary logs shipped for point-in-time recovery

Backup ids are the UTC start time, `20261126T023000Z`, so they sort by age.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Optional

from pydantic import BaseModel, Field

from pressfleet import validate
from pressfleet.backup.manifest import BackupManifest
from pressfleet.storage.base import ObjectNotFound, ObjectStore
from pressfleet.validate import InvalidInput

BACKUP_ID = re.compile(r"^\d{8}T\d{6}Z(-\d{1,3})?$")
ENC_SUFFIX = ".pfenc"
PART_FILES = {
    "database": "database.sql.zst",
    "files": "files.tar.zst",
    "config": "config.tar.zst",
    "index": "index.jsonl.zst",
}


class UnknownBackup(InvalidInput):
    """No complete backup with that id."""


def new_backup_id(now: Optional[datetime] = None) -> str:
    return (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def check_backup_id(backup_id: str) -> str:
    if not isinstance(backup_id, str) or not BACKUP_ID.match(backup_id):
        raise UnknownBackup(f"{str(backup_id)[:80]!r} is not a backup id (they look like 20261126T023000Z).")
    return backup_id


def backup_prefix(site: str, backup_id: str) -> str:
    return f"{validate.site_name(site)}/backups/{check_backup_id(backup_id)}/"


def manifest_key(site: str, backup_id: str) -> str:
    return backup_prefix(site, backup_id) + "manifest.json"


def part_key(site: str, backup_id: str, part: str, encrypted: bool) -> str:
    return backup_prefix(site, backup_id) + PART_FILES[part] + (ENC_SUFFIX if encrypted else "")


def verified_key(site: str, backup_id: str) -> str:
    return f"{validate.site_name(site)}/verified/{check_backup_id(backup_id)}.json"


INSTANCE_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def binlog_prefix(site: str, instance: Optional[str]) -> str:
    """Where a database server's shipped binary logs live: each server numbers its logs from 1, so the
    logs of a reinstalled server, or of the host a site was recovered to, go under their own id. Logs
    shipped before servers had ids (instance None) sit directly under binlogs/."""
    base = f"{validate.site_name(site)}/binlogs/"
    if instance is None:
        return base
    if not INSTANCE_ID.match(instance):
        raise InvalidInput(f"{instance[:80]!r} is not a database server id")
    return f"{base}{instance}/"


def binlog_objects(store: ObjectStore, site: str) -> dict[Optional[str], dict[str, list[str]]]:
    """Every shipped binary log's keys (the log, then its record), by database server id and log name."""
    base = binlog_prefix(site, None)
    out: dict[Optional[str], dict[str, list[str]]] = {}
    for obj in store.list(base):
        rest = obj.key[len(base):]
        instance, _, name = rest.rpartition("/")
        name = name.split(".zst", 1)[0]
        if (instance and not INSTANCE_ID.match(instance)) or not name:
            continue  # not pressfleet's
        out.setdefault(instance or None, {}).setdefault(name, []).append(obj.key)
    for logs in out.values():
        for keys in logs.values():
            keys.sort(key=lambda k: k.endswith(".json"))  # the record last
    return out


class Verification(BaseModel):
    backup_id: str
    verified_at: datetime
    seconds: float = Field(ge=0)
    target: str
    checks: list[str] = Field(default_factory=list)


class CatalogEntry(BaseModel):
    manifest: BackupManifest
    verification: Optional[Verification] = None

    @property
    def verified(self) -> bool:
        return self.verification is not None


def list_backups(store: ObjectStore, site: str) -> list[CatalogEntry]:
    """Every complete backup of SITE (oldest first), with its restore-test proof if it has one."""
    site = validate.site_name(site)
    manifests = []
    for obj in store.list(f"{site}/backups/"):
        if obj.key.endswith("/manifest.json"):
            manifests.append(BackupManifest.from_json(store.get_bytes(obj.key)))
    proofs: dict[str, Verification] = {}
    for obj in store.list(f"{site}/verified/"):
        v = Verification.model_validate_json(store.get_bytes(obj.key))
        proofs[v.backup_id] = v
    manifests.sort(key=lambda m: (m.started_at, m.backup_id))
    return [CatalogEntry(manifest=m, verification=proofs.get(m.backup_id)) for m in manifests]


def incomplete_backups(store: ObjectStore, site: str) -> list[str]:
    """Ids that have parts but no manifest: cut-off runs, never listed as backups."""
    site = validate.site_name(site)
    seen: dict[str, bool] = {}
    for obj in store.list(f"{site}/backups/"):
        backup_id = obj.key.split("/")[2] if obj.key.count("/") >= 3 else ""
        if BACKUP_ID.match(backup_id):
            seen[backup_id] = seen.get(backup_id, False) or obj.key.endswith("/manifest.json")
    return sorted(b for b, complete in seen.items() if not complete)


def load_manifest(store: ObjectStore, site: str, backup_id: str) -> BackupManifest:
    try:
        return BackupManifest.from_json(store.get_bytes(manifest_key(site, backup_id)))
    except ObjectNotFound:
        known = [e.manifest.backup_id for e in list_backups(store, site)]
        hint = f"; the newest are {', '.join(known[-5:])}" if known else "; it has no complete backup yet"
        raise UnknownBackup(f"{site} has no complete backup {backup_id!r} in {store.describe()}{hint}.") from None


def newest(store: ObjectStore, site: str) -> CatalogEntry:
    entries = list_backups(store, site)
    if not entries:
        raise UnknownBackup(f"{site} has no complete backup in {store.describe()} yet.")
    return entries[-1]


def chain(store: ObjectStore, site: str, manifest: BackupManifest,
          known: Optional[dict[str, BackupManifest]] = None) -> list[BackupManifest]:
    """The backups `manifest` restores through, full backup first, ending with `manifest` (manifests
    already read can be given as `known`, by id)."""
    out = [manifest]
    while out[-1].parent_id:
        if len(out) > 1000:
            raise UnknownBackup(f"backup {manifest.backup_id!r} of {site} has a parent chain longer than 1000")
        try:
            parent = out[-1].parent_id
            out.append(known[parent] if known and parent in known else load_manifest(store, site, parent))
        except UnknownBackup:
            raise UnknownBackup(
                f"backup {manifest.backup_id!r} of {site} depends on {out[-1].parent_id!r}, which is missing") from None
    return list(reversed(out))


def mark_verified(store: ObjectStore, site: str, proof: Verification) -> None:
    store.put_bytes(verified_key(site, proof.backup_id), proof.model_dump_json().encode())


def newest_verified(store: ObjectStore, site: str) -> Optional[datetime]:
    """When the newest backup that a restore-test proved was taken (None: no verified backup)."""
    verified = [e.manifest.started_at for e in list_backups(store, site) if e.verified]
    return max(verified) if verified else None


def delete_backup(store: ObjectStore, site: str, backup_id: str) -> list[str]:
    """Delete a backup: its manifest first (so it stops being listed as complete), then its parts and proof."""
    prefix = backup_prefix(site, backup_id)
    keys = [o.key for o in store.list(prefix)]
    keys.sort(key=lambda k: not k.endswith("/manifest.json"))
    for key in keys:
        store.delete(key)
    vkey = verified_key(site, backup_id)
    if store.exists(vkey):
        store.delete(vkey)
        keys.append(vkey)
    return keys


def describe(entry: CatalogEntry) -> dict:
    m = entry.manifest
    size = sum(p.size for p in m.parts)
    return {
        "backup": m.backup_id, "kind": m.kind, "parent": m.parent_id or "", "taken": m.started_at.isoformat(),
        "seconds": round((m.ended_at - m.started_at).total_seconds(), 1), "bytes": size,
        "files_changed": m.files_changed, "verified": entry.verified,
        "verified_at": entry.verification.verified_at.isoformat() if entry.verification else "",
        "encrypted": any(p.encrypted for p in m.parts),
    }


def to_json(entries: list[CatalogEntry]) -> str:
    return json.dumps([describe(e) for e in entries], indent=2)
