"""Backups, one concern per module:

- ``engine``: taking a backup (orchestration); ``restore``: restoring one (staging, checks, swap);
  ``restoretest``: proving one on a scratch target; ``binlogs``: shipping, staging and replaying binary logs,
  filtered to one site's database by ``binlogfilter`` (pure);
- ``sql``: every SQL statement and mariadb-* command of the concern; ``database``: the database server on a
  host (instance id, restore marks, pf_* staging databases); ``remote``: the host's scripts and staging folders;
- ``parts``: parts in storage (written encrypted and hashed, read back checked); ``catalog``: what is in storage;
  ``crypto``, ``streams``, ``index``, ``manifest``, ``dumpinfo``, ``binlogchain``, ``retention``: pure pieces.
"""

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
