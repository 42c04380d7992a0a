"""Backups: pure logic for retention pruning (``retention``) and the per-backup manifest (``manifest``)."""

from pressfleet.backup.manifest import BackupManifest, ManifestPart
from pressfleet.backup.retention import (
    BackupRecord,
    PrunePlan,
    RetentionError,
    RetentionPolicy,
    plan_prune,
)

__all__ = [
    "BackupManifest",
    "BackupRecord",
    "ManifestPart",
    "PrunePlan",
    "RetentionError",
    "RetentionPolicy",
    "plan_prune",
]
