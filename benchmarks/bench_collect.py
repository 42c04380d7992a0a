"""Metrics collection figures: one collect-metrics round over 20 lab hosts (target: under 10 s).

Boots lab hosts bc-01 ... bc-20 (pristine Debian 12), runs three rounds of the collect-metrics flow against
them inside an in-process Prefect API (temporary database) with a temporary SQLite metrics store, records
the collection time (first SSH connection to the last parsed output, `CollectSummary.seconds`) and the whole
flow call (with Prefect's own bookkeeping and the store write), and stops the hosts again by `lab.down`.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

from pressfleet.lab import hosts as lab

HOSTS = 20
TARGET_ROUND_SECONDS = 10.0
INOTIFY_INSTANCES = Path("/proc/sys/fs/inotify/max_user_instances")
# Each booted lab host's systemd, journald, logind, dbus... hold about 10 inotify instances, all counted
# against root's limit (no user namespaces): the kernel's default of 128 stops the lab at about 12 hosts,
# and the 13th fails to boot with only "Container ... failed with error code 255".
INOTIFY_NEEDED = 1024


def ensure_inotify_instances() -> int | None:
    """Raise fs.inotify.max_user_instances to INOTIFY_NEEDED if it is lower; returns the old value if raised."""
    current = int(INOTIFY_INSTANCES.read_text())
    if current >= INOTIFY_NEEDED:
        return None
    INOTIFY_INSTANCES.write_text(str(INOTIFY_NEEDED))
    return current


def run(write_result) -> None:
    lab.preflight()
    lab.ensure_template()
    raised_from = ensure_inotify_instances()  # left raised: lowering it could fail other people's boots
    names = [f"bc-{i:02d}" for i in range(1, HOSTS + 1)]
    work = Path(tempfile.mkdtemp(prefix="pressfleet-bench-collect-"))
    old_state = os.environ.get("PRESSFLEET_STATE")
    os.environ["PRESSFLEET_STATE"] = str(work / "state")  # counters of previous rounds: not the project's
    try:
        t0 = time.monotonic()
        # one after the other: systemd-nspawn instances started at the same moment race on their
        # /run/systemd/nspawn/propagate folders ("Attempted to remove disk file system ...")
        hosts = [lab.up(n, log=lambda m: None) for n in names]
        boot_seconds = time.monotonic() - t0

        from prefect.testing.utilities import prefect_test_harness

        from flows.collect_metrics import collect_metrics
        from pressfleet.lab.blocks import server_for

        servers = [server_for(h) for h in hosts]
        store_url = f"sqlite:///{work / 'metrics.db'}"
        rounds = []
        with prefect_test_harness(server_startup_timeout=60):
            for _ in range(3):
                t0 = time.monotonic()
                summary = collect_metrics(servers=servers, store_url=store_url)
                flow_seconds = time.monotonic() - t0
                rounds.append({
                    "round_seconds": summary.seconds,
                    "flow_seconds": round(flow_seconds, 3),
                    "up": summary.up,
                    "points": summary.points,
                    "stored": summary.stored,
                    "slowest_host_seconds": max(h.seconds for h in summary.hosts),
                })
                time.sleep(1)  # distinct round times
        write_result("collect", {
            "hosts": HOSTS,
            "sites": 0,
            "boot_seconds_for_all_hosts": round(boot_seconds, 1),
            "rounds": rounds,
            "round_seconds_median": round(statistics.median(r["round_seconds"] for r in rounds), 3),
            "flow_seconds_median": round(statistics.median(r["flow_seconds"] for r in rounds), 3),
            "all_hosts_up_every_round": all(r["up"] == HOSTS for r in rounds),
            "target_round_seconds": TARGET_ROUND_SECONDS,
            "inotify_max_user_instances_raised_from": raised_from,
            "note": "round = first SSH connection to last parsed output, hosts in parallel (the script samples CPU "
                    "over about 1 s); flow = the whole flow call in an in-process Prefect API, store write included",
        })
    finally:
        for name in names:
            lab.down(name)
        if old_state is None:
            os.environ.pop("PRESSFLEET_STATE", None)
        else:
            os.environ["PRESSFLEET_STATE"] = old_state
        import shutil

        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    from benchmarks.run import write_result

    run(write_result)
