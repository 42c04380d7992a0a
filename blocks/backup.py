"""Backup blocks: the retention policy a person sets in the UI (which generations prune-backups keeps).

The backup key is a standard Prefect Secret block: `pressfleet-backup-key` (`make demo` creates one; or pick
another in a run's form). Backups are encrypted and authenticated on the control side before they reach storage,
and a run without a key is refused unless its storage block says `encryption: none` (see README, Backups).
"""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field, model_validator

from blocks.storage import AnyStorage
from pressfleet.backup.retention import RetentionPolicy


class BackupRetention(Block):
    """How many backup generations to keep; prune-backups deletes the rest.

    A backup is kept if any rule keeps it. Whatever the rules, the newest backup a restore-test
    verified is never deleted, nor a backup a kept incremental depends on.
    """

    _block_type_name = "Backup Retention"
    _block_type_slug = "backup-retention"
    _description = "Keep the last N backups, and the newest of each of D days, W weeks, M months, Y years."

    keep_last: int = Field(7, ge=0, le=10000, title="Keep the last N backups")
    keep_daily: int = Field(14, ge=0, le=10000, title="Daily: newest backup of each of the last D days")
    keep_weekly: int = Field(8, ge=0, le=10000, title="Weekly: newest of each of the last W ISO weeks")
    keep_monthly: int = Field(12, ge=0, le=10000, title="Monthly: newest of each of the last M months")
    keep_yearly: int = Field(2, ge=0, le=1000, title="Yearly: newest of each of the last Y years")

    @model_validator(mode="after")
    def _keeps_something(self) -> "BackupRetention":
        self.policy()
        return self

    def policy(self) -> RetentionPolicy:
        return RetentionPolicy(keep_last=self.keep_last, keep_daily=self.keep_daily, keep_weekly=self.keep_weekly,
                               keep_monthly=self.keep_monthly, keep_yearly=self.keep_yearly)


class BackupCopyPolicy(Block):
    """Geographic redundancy: every verified backup copied from one storage to a second one (say S3 to GCS),
    each object checked against its manifest; the copies restore-tested from the second storage on schedule."""

    _block_type_name = "Backup Copy Policy"
    _block_type_slug = "backup-copy-policy"
    _description = "Copy verified backups to a second storage, check every object, restore-test the copies."

    source: AnyStorage = Field(..., title="From", description="The storage the nightly backups go to.")
    target: AnyStorage = Field(..., title="To", description="The second storage (another provider or region).")
    sites: list[str] = Field(default_factory=list, title="Sites", description="Site names; empty: every site.")
    verified_only: bool = Field(True, title="Only verified backups",
                                description="Copy only backups a restore-test proved (with their chains).")
