"""Copy verified backups to a second storage and restore-test the copies: geographic redundancy of backups.

Run nightly after the restore-tests (`copy-backups`): each Backup Copy Policy block's verified backups (with
the chains they restore through) are streamed from its first storage to its second, every object checked
against the sha256 and size its manifest recorded, the manifest last. Weekly (`copy-restore-test`) the newest
copy of each site is restore-tested from the second storage, proving it restores without the first.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Optional

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.blocks.system import Secret

from blocks.backup import BackupCopyPolicy
from blocks.server import Server
from pressfleet.backup.copy import copy_site
from pressfleet.backup.targets import encryption_secret


def _policies(policy: Optional[BackupCopyPolicy]) -> list[BackupCopyPolicy]:
    if policy is not None:
        return [policy]
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        try:
            docs = client.read_block_documents_by_type(block_type_slug="backup-copy-policy", include_secrets=False)
        except Exception:  # noqa: BLE001 - the block type is not registered: no policy
            return []
    return [BackupCopyPolicy.load(d.name) for d in docs if d.name and not d.is_anonymous]


@flow(name="copy-backups")
def copy_backups(policy: Optional[BackupCopyPolicy] = None, encryption_key: Optional[Secret] = None,
                 restore_test_copies: bool = False, scratch: Optional[Server] = None) -> list[dict]:
    """Copy each policy's backups (every saved Backup Copy Policy when none is given); with
    `restore_test_copies`, restore-test each site's newest copy from the second storage (on `scratch`, or a
    fresh lab host like restore-test's)."""
    from blocks.site import WordPressSite
    from pressfleet.fleet.sites import saved_sites

    log = get_run_logger()
    policies = _policies(policy)
    if not policies:
        log.info("no Backup Copy Policy block is saved: nothing to copy")
        return []
    sites = {s.name: s for s in saved_sites()}
    results, failures = [], []
    for p in policies:
        src, dst = p.source.store(), p.target.store()
        secret = encryption_secret(encryption_key, p.source)
        for name in p.sites or sorted(sites):
            try:
                report = copy_site(src, dst, name, secret, verified_only=p.verified_only)
            except Exception as exc:  # noqa: BLE001 - one site's failure is reported, the others go on
                failures.append(f"{name}: {type(exc).__name__}: {exc}")
                continue
            row = asdict(report) | {"from": src.describe(), "to": dst.describe()}
            log.info("%s: %d backup(s) copied (%d objects, %d bytes), %d already there, from %s to %s", name,
                     len(report.copied), report.objects, report.bytes, len(report.present), row["from"], row["to"])
            if restore_test_copies and (report.copied or report.present) and name in sites:
                from flows.restore_test import restore_test

                try:
                    tested = restore_test(site=WordPressSite.load(sites[name].block), storage=p.target,
                                          encryption_key=encryption_key, scratch=scratch)
                    row["restore_test"] = {"backup": tested[0]["backup"], "seconds": tested[0]["seconds"]}
                except Exception as exc:  # noqa: BLE001
                    failures.append(f"{name}: the copy's restore-test failed: {exc}")
            results.append(row)
    lines = ["# Backup copies", "", "| site | from | to | copied | already there | objects | bytes | restore-test |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        rt = r.get("restore_test")
        tested = f"{rt['backup']} in {rt['seconds']:.1f} s" if rt else "-"
        lines.append(f"| {r['site']} | {r['from']} | {r['to']} | {', '.join(r['copied']) or '-'} | {len(r['present'])} "
                     f"| {r['objects']} | {r['bytes']} | {tested} |")
    if failures:
        lines += ["", "## Failed", *[f"- {f}" for f in failures]]
    create_markdown_artifact(key="copy-backups", markdown="\n".join(lines), description="copy-backups")
    if failures:
        raise RuntimeError("copy-backups: " + "; ".join(failures))
    return results
