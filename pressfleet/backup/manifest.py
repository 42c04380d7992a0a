"""The manifest stored next to every backup: what it holds and how to check each part.

A manifest names the site, the backup (id, kind and, for an incremental, the backup it depends on),
when it started and ended, the WordPress version, every part (object key, sha256, size, compressed
or not, encrypted or not) and the row count of every table. A restore-test checks each part it
reads with ``verify_part`` and each table it loads against ``table_rows``.

``to_json()`` / ``from_json()`` round-trip exactly; ``manifest_sha256()`` is the sha256 of a
canonical form (sorted keys, parts sorted by name, times in UTC, the MAC left out), so the same content
always gives the same digest whatever order it was built in.

``format`` says which pressfleet wrote it: 1 (no field: before manifests were authenticated), 2 (a MAC
and the parent's manifest digest). ``from_json`` reads up to ``FORMAT`` and refuses a newer one by name.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Annotated, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from pressfleet.backup.retention import BackupRecord, Kind
from pressfleet.validate import InvalidInput

FORMAT = 2

Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{64}$", to_lower=True)]


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"time {value.isoformat()} has no time zone; give it in UTC")
    return value.astimezone(UTC)


class ManifestPart(BaseModel):
    """One stored object of a backup (the database dump, wp-content, the config files...)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    key: str = Field(min_length=1)
    sha256: Sha256
    size: int = Field(ge=0)
    compressed: bool = True
    encrypted: bool = False

    def mismatch(self, sha256: str, size: int, what: str) -> str | None:
        """None if stored bytes with this sha256 and size are this part, else one sentence saying what differs."""
        got = sha256.lower()
        problems = []
        if got != self.sha256:
            problems.append(f"sha256 expected {self.sha256}, got {got}")
        if size != self.size:
            problems.append(f"size expected {self.size} bytes, got {size}")
        return f"{what} does not match: " + "; ".join(problems) if problems else None


class NewerFormat(InvalidInput):
    """The manifest was written by a newer pressfleet than this one."""


class BackupManifest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    format: int = Field(default=FORMAT, ge=1, description="1: before authentication; 2: MAC'd, parent digest")
    site: str = Field(min_length=1)
    backup_id: str = Field(min_length=1)
    kind: Kind = "full"
    parent_id: str | None = None
    started_at: datetime
    ended_at: datetime
    wordpress_version: str = Field(min_length=1)
    parts: list[ManifestPart] = Field(default_factory=list)
    table_rows: dict[str, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)
    host: str = ""
    database: str = ""
    binlog_file: str | None = Field(default=None, description="binary log position of the database snapshot (PITR)")
    binlog_position: int | None = Field(default=None, ge=0)
    database_from: Literal["dump", "binlog"] = Field(
        default="dump", description="dump: the whole database; binlog: the binary logs since the parent's snapshot")
    database_instance: str | None = Field(
        default=None, description="the database server that wrote binlog_file: positions mean something only there")
    binlog_start_file: str | None = None
    binlog_start_position: int | None = Field(default=None, ge=0)
    files_total: int = Field(default=0, ge=0, description="files and folders the site had")
    files_changed: int = Field(default=0, ge=0, description="files this backup's archive holds")
    bytes_read: int = Field(default=0, ge=0, description="file bytes read into this backup's archive")
    source_bytes: int = Field(default=0, ge=0, description="the site's file bytes plus its dump, uncompressed")
    restore_mark: str | None = Field(
        default=None, description="the newest in-place restore of the database on its server when this backup was "
        "taken (db_restore_mark.sh): when it has changed, the next backup is a full one")
    parent_sha256: Optional[Sha256] = Field(
        default=None, description="manifest_sha256() of the parent this incremental was taken on")
    mac: Optional[str] = Field(default=None, description="HMAC of the canonical form and the object's name")

    @field_validator("started_at", "ended_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return _utc(value)

    @model_validator(mode="after")
    def _consistent(self) -> BackupManifest:
        if self.kind == "incremental" and not self.parent_id:
            raise ValueError(f"incremental backup {self.backup_id!r} has no parent_id")
        if self.kind == "full" and self.parent_id is not None:
            raise ValueError(f"full backup {self.backup_id!r} has a parent_id ({self.parent_id!r})")
        if self.database_from == "binlog" and (self.kind != "incremental" or not self.binlog_start_file
                                               or self.binlog_start_position is None or not self.binlog_file
                                               or self.binlog_position is None):
            raise ValueError(f"backup {self.backup_id!r} takes its database from binary logs but is not an "
                             "incremental with start and end positions")
        if self.ended_at < self.started_at:
            raise ValueError(
                f"backup {self.backup_id!r} ends ({self.ended_at.isoformat()}) before it starts "
                f"({self.started_at.isoformat()})"
            )
        seen: set[str] = set()
        for part in self.parts:
            if part.name in seen:
                raise ValueError(f"part {part.name!r} appears more than once in backup {self.backup_id!r}")
            seen.add(part.name)
        return self

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str | bytes) -> BackupManifest:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"the manifest is not JSON ({exc})") from None
        found = data.get("format") if isinstance(data, dict) else None
        if isinstance(found, int) and found > FORMAT:
            raise NewerFormat(f"backup {str(data.get('backup_id'))[:40]!r} was written by a newer pressfleet "
                              f"(format {found}); this one reads up to {FORMAT}")
        if isinstance(data, dict) and "format" not in data:
            data["format"] = 1  # written before manifests said their format
        return cls.model_validate(data)

    def canonical_json(self) -> str:
        data = self.model_dump(mode="json", exclude={"mac"})
        data["parts"] = sorted(data["parts"], key=lambda p: p["name"])
        return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    def manifest_sha256(self) -> str:
        return hashlib.sha256(self.canonical_json().encode("utf-8")).hexdigest()

    def part(self, name: str) -> ManifestPart | None:
        return next((p for p in self.parts if p.name == name), None)

    def verify_part(self, name: str, sha256: str, size: int) -> str | None:
        """None if the part matches the manifest, else one sentence saying what differs."""
        part = self.part(name)
        where = f"backup {self.backup_id!r} of {self.site}"
        if part is None:
            known = ", ".join(sorted(p.name for p in self.parts)) or "none"
            return f"part {name!r} is not in the manifest of {where} (parts: {known})"
        return part.mismatch(sha256, size, f"part {name!r} ({part.key}) of {where}")

    def as_record(self, verified: bool = False) -> BackupRecord:
        """The entry retention pruning sees for this backup (dated when it started)."""
        return BackupRecord(
            id=self.backup_id, taken_at=self.started_at, kind=self.kind, parent=self.parent_id, verified=verified
        )
