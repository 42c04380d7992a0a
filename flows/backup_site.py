"""Back up WordPress sites: the nightly job. Each site's database (a consistent snapshot, no table locks),
its wp-content and its vhost, pool and wp-config files go to storage with a manifest of checksums."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Optional

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.blocks.system import Secret

from blocks.server import Server
from blocks.site import WordPressSite
from blocks.storage import AnyStorage
from pressfleet.alerts.store import put_observations
from pressfleet.analysis.metric_names import BACKUP_BYTES
from pressfleet.backup import report
from pressfleet.fleet.nothing import no_saved_sites, nothing_to_do
from pressfleet.backup.targets import server_of, sites_or_all, storage_block
from pressfleet.fleet.locks import site_lock
from pressfleet.metrics.collect import host_label
from pressfleet.metrics.store import open_store
from tasks.backup import backup_one


def record_backup_bytes(server, domain: str, provider: str, total: int) -> None:
    """Store `backup_bytes` (what the site's backups occupy in this storage) for the cost report.
    A metrics store that cannot be written costs a warning, never the backup."""
    storage_class = "hot" if provider == "azure" else "standard"  # what pressfleet writes with
    try:
        open_store().write_points([{"time": datetime.now(UTC), "host": host_label(server), "site": domain,
                                    "metric": BACKUP_BYTES,
                                    "labels": {"provider": provider, "storage_class": storage_class},
                                    "value": float(total)}])
    except Exception as exc:  # noqa: BLE001 - the backup itself succeeded
        get_run_logger().warning("backup_bytes not recorded in the metrics store: %s", exc)


@flow(name="backup-site")
def backup_site(
    site: Optional[WordPressSite] = None,
    storage: Optional[AnyStorage] = None,
    server: Optional[Server] = None,
    encryption_key: Optional[Secret] = None,
    full_every_days: int = 7,
    full: bool = False,
) -> list[dict]:
    """Back up one site (or, left empty, every saved site that names its server) to storage.

    What you get: in storage, a backup per site with a manifest (every part's sha256 and size, the
    WordPress version, each table's rows, start and end time). Backups are incremental: files that did
    not change since the last backup are not read or uploaded again; a full backup is taken when the
    last one is `full_every_days` old (or when `full` is set). Storage left empty is the local folder
    `local-backups`; the encryption key left empty is the Secret block `pressfleet-backup-key` (the key
    stays on the control side); without a key the run is refused unless the storage says `encryption: none`. The run's artifact lists size, duration, throughput,
    what changed, verified or not, RPO and the last measured RTO. A site that fails fails the run after
    the others are done; nothing half-written is ever listed as a backup.
    """
    if no_saved_sites(site):  # a schedule that fires before the first site exists: completes with a note
        return nothing_to_do("backup-site")
    store_block = storage_block(storage)
    targets = sites_or_all(site)
    by_name = {s.name: s for s in targets}
    provider = store_block.store().provider
    with site_lock([s.name for s in targets], "backup-site", hosts=[server or s.server for s in targets],
                   logger=get_run_logger()) as lock:
        futures = {s.name: backup_one.submit(s, store_block, server, encryption_key, full_every_days, full)
                   for s in targets}
        summaries, rows, failures, notes = [], [], [], [lock.note] if lock.note else []
        observations: list = []
        for name, future in futures.items():
            try:
                summary = future.result()
            except Exception as exc:
                failures.append(f"{name}: {exc}")
                continue
            record_backup_bytes(server_of(by_name[name], server), by_name[name].config().domain, provider,
                                summary["stored_bytes"])
            summaries.append({**summary, "lock_waited_seconds": round(lock.waited, 1)})
            if summary.get("size_ratio") is not None:
                observations.append((f"pressfleet.site.{name}", "backup_size_ratio", summary["size_ratio"],
                                     {"backup": summary["backup"], "kind": summary["kind"],
                                      "bytes": summary["bytes"]}))
            rows.append(report.backup_row(name, summary))
            notes += [f"{name}: {n}" for n in summary["notes"]]
    put_observations(observations, log=get_run_logger().warning)
    create_markdown_artifact(key="backup-site", markdown=report.backup_markdown(
        f"Backups to {store_block.store().describe()}", rows, failures, notes), description="backup-site")
    if failures:
        raise RuntimeError("backup failed for " + "; ".join(failures))
    return summaries
