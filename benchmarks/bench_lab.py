"""Lab figures: template build time (from its marker) and boot-to-SSH per host (median of 5)."""

from __future__ import annotations

import json
import statistics
import time

from pressfleet.lab import hosts as lab


def run(write_result) -> None:
    lab.preflight()
    started = time.monotonic()
    tpl = lab.ensure_template()
    reused = time.monotonic() - started < 5
    built = json.loads((tpl / ".pressfleet-template").read_text())
    boots = []
    for i in range(5):
        name = f"bench{i}"
        lab.down(name)
        t0 = time.monotonic()
        lab.up(name, log=lambda m: None)
        boots.append(time.monotonic() - t0)
        lab.down(name)
    write_result("lab", {
        "template_build_seconds": round(built["seconds"], 1),
        "template_reused_this_run": reused,
        "boot_to_ssh_seconds": [round(b, 3) for b in boots],
        "boot_to_ssh_median_seconds": round(statistics.median(boots), 3),
        "target_boot_to_ssh_seconds": 2.0,
    })
