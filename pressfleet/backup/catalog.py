"""Where backups live in storage, and the index of them (the storage itself is the catalogue).

    <site>/backups/<backup-id>/manifest.json      written last: a backup without it is not complete
    <site>/backups/<backup-id>/<part>.<ext>       database.sql.zst, files.tar.zst, config.tar.zst,
                                                  index.jsonl.zst; `.pfenc` appended when encrypted
    <site>/verified/<backup-id>.json              a restore-test's proof (time, duration, target)
    <site>/binlogs/<binlog-name>.zst[.pfenc]      MariaDB binary logs shipped for point-in-time recovery

Backup ids are the UTC start time, `20261126T023000Z`, so they sort by age.

With a backup key, what retention and restore trust is authenticated (crypto.Keyring's MAC key):
each manifest, restore-test marker and binary-log record carries an HMAC over its content and its own
object name, so a copy under another name, an edit, or a forgery without the key is refused; a marker
names the digest of the manifest it proved and an incremental the digest of its parent's, so a manifest
replaced by another validly MAC'd one (a rollback) breaks the link and is refused. Listing never raises
on one bad object: `list_backups` returns the good ones with `problems`, one sentence per bad one.
Without a key nothing is keyed: names and digests are still cross-checked, which catches accidents,
not an attacker with write access to the storage.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Optional

from pydantic import BaseModel, Field

from pressfleet import validate
from pressfleet.backup.crypto import Keyring, Secret, keyring
from pressfleet.backup.manifest import BackupManifest, ManifestPart
from pressfleet.storage.base import ObjectNotFound, ObjectStore, StorageError
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


class Unauthentic(InvalidInput):
    """A manifest, marker or record does not authenticate with the backup key (or is not where it says)."""


def _keys(store: ObjectStore, secret: Optional[Secret]) -> Optional[Keyring]:
    return keyring(secret, store) if secret else None


def _canonical(data: dict) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


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
    manifest_sha256: Optional[str] = Field(default=None, description="the digest of the manifest it proved")
    mac: Optional[str] = None

    def signed_bytes(self) -> bytes:
        return _canonical(self.model_dump(mode="json", exclude={"mac"}))


class CatalogEntry(BaseModel):
    manifest: BackupManifest
    verification: Optional[Verification] = None

    @property
    def verified(self) -> bool:
        return self.verification is not None


class BackupList(list):
    """A list of CatalogEntry (oldest first) with `problems`: one sentence per object that could not be used."""

    def __init__(self, entries=(), problems: Optional[list[str]] = None) -> None:
        super().__init__(entries)
        self.problems: list[str] = list(problems or [])


# --- manifests, markers and records: written and read with their MAC ----------------------------------


def write_manifest(store: ObjectStore, manifest: BackupManifest, secret: Optional[Secret] = None,
                   metadata: Optional[dict] = None) -> BackupManifest:
    """Store a backup's manifest (MAC'd over its content and its object name when there is a key)."""
    key = manifest_key(manifest.site, manifest.backup_id)
    keys = _keys(store, secret)
    if keys is not None:
        manifest = manifest.model_copy(update={"mac": keys.mac("manifest", key, manifest.canonical_json().encode())})
    store.put_bytes(key, manifest.to_json().encode(), metadata=metadata)
    return manifest


def read_manifest(store: ObjectStore, key: str, keys: Optional[Keyring]) -> BackupManifest:
    """The manifest at KEY; raises Unauthentic (or the parse error) saying why it cannot be used."""
    manifest = BackupManifest.from_json(store.get_bytes(key))
    if key != manifest_key(manifest.site, manifest.backup_id):
        raise Unauthentic(f"{key} holds the manifest of backup {manifest.backup_id!r} of {manifest.site}, "
                          "not its own: it was copied or moved")
    if keys is None:
        return manifest
    if manifest.format < 2:
        raise Unauthentic(f"backup {manifest.backup_id!r} of {manifest.site} was written by an older pressfleet "
                          f"(format {manifest.format}) without authentication: with a backup key it is not trusted "
                          "(restore it with an older pressfleet, or take a new full backup)")
    if not keys.verify("manifest", key, manifest.canonical_json().encode(), manifest.mac):
        raise Unauthentic(f"the manifest of backup {manifest.backup_id!r} of {manifest.site} does not authenticate: "
                          "it was altered or forged, or written with another key")
    return manifest


def write_verification(store: ObjectStore, site: str, proof: Verification, keys: Optional[Keyring]) -> None:
    key = verified_key(site, proof.backup_id)
    if keys is not None:
        proof = proof.model_copy(update={"mac": keys.mac("verified", key, proof.signed_bytes())})
    store.put_bytes(key, proof.model_dump_json().encode())


def read_verification(store: ObjectStore, key: str, keys: Optional[Keyring]) -> Verification:
    proof = Verification.model_validate_json(store.get_bytes(key))
    if key.rsplit("/", 1)[-1] != f"{proof.backup_id}.json":
        raise Unauthentic(f"restore-test marker {key} names backup {proof.backup_id[:40]!r}: it was copied or moved")
    if keys is not None and not keys.verify("verified", key, proof.signed_bytes(), proof.mac):
        raise Unauthentic(f"restore-test marker {key} does not authenticate (forged, altered, or written with "
                          f"another key): backup {proof.backup_id!r} is not counted as verified")
    return proof


class BinlogRecord(BaseModel):
    """What a shipped binary log's `.json` record holds (format 2: the part and its MAC)."""

    format: int = 2
    part: ManifestPart
    mac: Optional[str] = None


def write_binlog_record(store: ObjectStore, part: ManifestPart, secret: Optional[Secret] = None) -> None:
    key = part.key + ".json"
    keys = _keys(store, secret)
    mac = keys.mac("binlog", key, _canonical(part.model_dump(mode="json"))) if keys is not None else None
    store.put_bytes(key, BinlogRecord(part=part, mac=mac).model_dump_json().encode())


def read_binlog_record(store: ObjectStore, key: str, secret: Optional[Secret] = None) -> ManifestPart:
    """A shipped binary log's sha256 and size; raises Unauthentic when the record cannot be trusted."""
    data = json.loads(store.get_bytes(key))
    keys = _keys(store, secret)
    if isinstance(data, dict) and "part" in data:
        record = BinlogRecord.model_validate(data)
    elif keys is None:
        record = BinlogRecord(format=1, part=ManifestPart.model_validate(data))  # before records were MAC'd
    else:
        raise Unauthentic(f"binary-log record {key} was written without authentication (an older pressfleet): "
                          "with a backup key it is not trusted; ship the logs again after a new full backup")
    if record.part.key + ".json" != key:
        raise Unauthentic(f"binary-log record {key} describes {record.part.key[:100]}: it was copied or moved")
    if keys is not None and not keys.verify("binlog", key, _canonical(record.part.model_dump(mode="json")),
                                            record.mac):
        raise Unauthentic(f"binary-log record {key} does not authenticate: it was altered or forged, or written "
                          "with another key")
    return record.part


def _problem(key: str, exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if isinstance(exc, InvalidInput) else f"{key} cannot be read: {text[:300]}"


def list_backups(store: ObjectStore, site: str, secret: Optional[Secret] = None) -> BackupList:
    """Every complete backup of SITE (oldest first), with its restore-test proof if it has one.

    A manifest or marker that cannot be read, is newer than this pressfleet, or (with a key) does not
    authenticate is left out and named in `problems`; so is a backup whose parent's manifest is not the
    one it was taken on. A marker counts only for the manifest it proved."""
    site = validate.site_name(site)
    keys = _keys(store, secret)
    manifests, problems, left_out = [], [], set()
    for obj in store.list(f"{site}/backups/"):
        if obj.key.endswith("/manifest.json"):
            try:
                manifests.append(read_manifest(store, obj.key, keys))
            except (StorageError, ValueError) as exc:  # pydantic's ValidationError and InvalidInput are ValueErrors
                problems.append(_problem(obj.key, exc))
                left_out.add(obj.key.split("/")[2])
    proofs: dict[str, Verification] = {}
    for obj in store.list(f"{site}/verified/"):
        try:
            v = read_verification(store, obj.key, keys)
            proofs[v.backup_id] = v
        except (StorageError, ValueError) as exc:
            problems.append(_problem(obj.key, exc))
    manifests.sort(key=lambda m: (m.started_at, m.backup_id))
    by_id: dict[str, BackupManifest] = {}
    entries = []
    for m in manifests:
        if m.parent_id in left_out or m.parent_id in by_id:
            link = _link_problem(m, by_id.get(m.parent_id), keys is not None)
            if link:
                problems.append(link)
                left_out.add(m.backup_id)
                continue
        by_id[m.backup_id] = m
        proof = proofs.get(m.backup_id)
        if proof is not None and (proof.manifest_sha256 != m.manifest_sha256()
                                  if keys is not None or proof.manifest_sha256 else False):
            problems.append(f"the restore-test marker of backup {m.backup_id!r} does not name this manifest "
                            "(it proved another version, or none): the backup is not counted as verified")
            proof = None
        entries.append(CatalogEntry(manifest=m, verification=proof))
    return BackupList(entries, problems)


def _link_problem(child: BackupManifest, parent: Optional[BackupManifest], keyed: bool) -> Optional[str]:
    """One sentence when CHILD cannot be restored through PARENT (None: the link holds)."""
    where = f"backup {child.backup_id!r} of {child.site}"
    if parent is None:
        return f"{where} depends on {child.parent_id!r}, which was left out (see above)"
    if child.parent_sha256 is None:
        if keyed:
            return f"{where} does not name its parent's manifest digest: it cannot be checked with a key"
        return None
    if child.parent_sha256 != parent.manifest_sha256():
        return (f"{where} depends on {parent.backup_id!r}, whose manifest is not the one it was taken on "
                "(replaced or rolled back)")
    return None


def incomplete_backups(store: ObjectStore, site: str) -> list[str]:
    """Ids that have parts but no manifest: cut-off runs, never listed as backups."""
    site = validate.site_name(site)
    seen: dict[str, bool] = {}
    for obj in store.list(f"{site}/backups/"):
        backup_id = obj.key.split("/")[2] if obj.key.count("/") >= 3 else ""
        if BACKUP_ID.match(backup_id):
            seen[backup_id] = seen.get(backup_id, False) or obj.key.endswith("/manifest.json")
    return sorted(b for b, complete in seen.items() if not complete)


def load_manifest(store: ObjectStore, site: str, backup_id: str, secret: Optional[Secret] = None) -> BackupManifest:
    """One backup's manifest; with a key, refused (Unauthentic) unless it authenticates."""
    try:
        return read_manifest(store, manifest_key(site, backup_id), _keys(store, secret))
    except ObjectNotFound:
        known = [e.manifest.backup_id for e in list_backups(store, site, secret)]
        hint = f"; the newest are {', '.join(known[-5:])}" if known else "; it has no complete backup yet"
        raise UnknownBackup(f"{site} has no complete backup {backup_id!r} in {store.describe()}{hint}.") from None


def newest(store: ObjectStore, site: str, secret: Optional[Secret] = None) -> CatalogEntry:
    entries = list_backups(store, site, secret)
    if not entries:
        bad = f" ({len(entries.problems)} left out: {entries.problems[0]})" if entries.problems else ""
        raise UnknownBackup(f"{site} has no complete backup in {store.describe()} yet{bad}.")
    return entries[-1]


def chain(store: ObjectStore, site: str, manifest: BackupManifest,
          known: Optional[dict[str, BackupManifest]] = None, secret: Optional[Secret] = None) -> list[BackupManifest]:
    """The backups `manifest` restores through, full backup first, ending with `manifest` (manifests
    already read can be given as `known`, by id). Each parent must be the manifest its child was taken
    on (the child names its digest); with a key each one read must authenticate."""
    out = [manifest]
    while out[-1].parent_id:
        if len(out) > 1000:
            raise UnknownBackup(f"backup {manifest.backup_id!r} of {site} has a parent chain longer than 1000")
        try:
            parent = out[-1].parent_id
            found = known[parent] if known and parent in known else load_manifest(store, site, parent, secret)
        except UnknownBackup:
            raise UnknownBackup(
                f"backup {manifest.backup_id!r} of {site} depends on {out[-1].parent_id!r}, which is missing") from None
        problem = _link_problem(out[-1], found, secret is not None and bool(secret))
        if problem:
            raise Unauthentic(problem)
        out.append(found)
    return list(reversed(out))


def mark_verified(store: ObjectStore, site: str, proof: Verification, secret: Optional[Secret] = None,
                  manifest: Optional[BackupManifest] = None) -> None:
    """Write a restore-test's proof; it names the digest of MANIFEST (the one proved) and, with a key, is MAC'd."""
    if manifest is not None:
        proof = proof.model_copy(update={"manifest_sha256": manifest.manifest_sha256()})
    write_verification(store, site, proof, _keys(store, secret))


def newest_verified(store: ObjectStore, site: str, secret: Optional[Secret] = None) -> Optional[datetime]:
    """When the newest backup that a restore-test proved was taken (None: no verified backup)."""
    verified = [e.manifest.started_at for e in list_backups(store, site, secret) if e.verified]
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


def size_ratio(entries: list[CatalogEntry], backup_id: str, *, window: int = 7, least: int = 3) -> Optional[float]:
    """How many times the usual size BACKUP_ID is: its stored bytes over the median of the `window` backups of
    the same kind before it (None with fewer than `least` of them, or when they are empty)."""
    sizes = {e.manifest.backup_id: sum(p.size for p in e.manifest.parts) for e in entries}
    this = next((e for e in entries if e.manifest.backup_id == backup_id), None)
    if this is None:
        return None
    before = [sizes[e.manifest.backup_id] for e in entries
              if e.manifest.kind == this.manifest.kind and e.manifest.started_at < this.manifest.started_at][-window:]
    if len(before) < least:
        return None
    usual = sorted(before)[len(before) // 2] if len(before) % 2 else sum(sorted(before)[len(before) // 2 - 1:
                                                                                     len(before) // 2 + 1]) / 2
    return round(sizes[backup_id] / usual, 3) if usual > 0 else None


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


# --- failed restore-tests (helper of engine._previous_for_incremental): the next backup is a full one ---
# A marker only ever makes a backup full, so an unauthenticated or forged one costs a full backup, never data.


def restore_test_failed_key(site: str, backup_id: str) -> str:
    return f"{validate.site_name(site)}/restore-test-failed/{check_backup_id(backup_id)}.json"


def mark_restore_test_failed(store: ObjectStore, site: str, backup_id: str, when: datetime, reason: str) -> None:
    """Record that a restore-test of BACKUP_ID failed: the site's next backup does not build on its chain."""
    store.put_bytes(restore_test_failed_key(site, backup_id), json.dumps(
        {"backup_id": backup_id, "failed_at": when.astimezone(UTC).isoformat(), "reason": reason[:2000]}).encode())


def restore_test_failures(store: ObjectStore, site: str) -> set[str]:
    """The ids of the backups whose restore-test failed."""
    prefix = f"{validate.site_name(site)}/restore-test-failed/"
    out = set()
    for obj in store.list(prefix):
        name = obj.key[len(prefix):].removesuffix(".json")
        if BACKUP_ID.match(name):
            out.add(name)
    return out
