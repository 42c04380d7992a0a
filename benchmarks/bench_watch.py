"""Watcher figures: how soon a site that stops answering is alerted, and what watching 500 sites costs.

- Detection latency (median of 5): five sites, each served by its own process on loopback; the watcher runs as
  shipped (a round every 30 s, a failed probe retried after 3 s, the shipped site-down rule); at a random moment
  of the round one site's process is stopped (by its PID) and the time to the watcher's `firing` notice (the
  event the policy's automation mails at once) is taken. The mail's own delivery is the lab test's
  (tests/lab/test_watch.py, under 45 s from nginx stopping).
- Capacity: 500 sites and 50 servers (HTTPS with SNI, SSH banners) answered by one other process; three rounds
  of the real Watcher.run_round (probes, metrics store writes, rules, alert store); the watcher process's CPU
  per round over the 30-second interval is its share of a core (target: under 10 %). The fleet is given to the
  watcher directly: reading it from the Prefect API (four requests a round) is left out.
Events go to an in-process Prefect API (temporary database).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SITES, SERVERS, TRIALS, INTERVAL = 500, 50, 5, 30.0
TARGET_CPU_SHARE = 0.10


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(work: Path, https: int, ssh: int = 0) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.watch_targets", "--cert", str(work / "c.pem"),
                             "--key", str(work / "k.pem"), "--https", str(https), "--ssh", str(ssh)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(10)


def run(write_result) -> None:
    work = Path(tempfile.mkdtemp(prefix="pressfleet-bench-watch-"))
    os.environ["PRESSFLEET_STATE"] = str(work / "state")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "90", "-subj",
                    "/CN=bench.lab.test", "-keyout", str(work / "k.pem"), "-out", str(work / "c.pem")],
                   check=True, capture_output=True)
    from prefect.testing.utilities import prefect_test_harness

    from pressfleet.alerts.rules import DEFAULT_RULES
    from pressfleet.alerts.store import AlertStore
    from pressfleet.watch.probes import ServerTarget, SiteTarget
    from pressfleet.watch.watcher import Fleet, Watcher

    procs: list[subprocess.Popen] = []
    try:
        with prefect_test_harness(server_startup_timeout=60):
            # --- capacity ---
            https, ssh = _port(), _port()
            procs.append(_serve(work, https, ssh))
            sites = [SiteTarget(name=f"s{i:03d}", domain=f"s{i:03d}.bench.lab.test", address="127.0.0.1",
                                server=f"h{i % SERVERS:02d}", port=https, keyword="benchmark site")
                     for i in range(SITES)]
            servers = [ServerTarget(name=f"h{i:02d}", address="127.0.0.1", port=ssh) for i in range(SERVERS)]
            w = Watcher(interval=INTERVAL, refresh=1e12, store=AlertStore(work / "cap.db"),
                        metrics_url=f"sqlite:///{work / 'metrics.db'}", log=lambda m: None)
            w.fleet, w.fleet_at = Fleet(sites, servers, list(DEFAULT_RULES), {}, []), time.time()
            rounds = [asyncio.run(w.run_round()) for _ in range(3)]
            assert all(r["sites_down"] == 0 and r["servers_down"] == 0 for r in rounds), rounds
            cpu = statistics.mean(r["cpu_seconds"] for r in rounds[1:])  # the first round imports and creates
            wall = statistics.mean(r["seconds"] for r in rounds[1:])
            _stop(procs.pop())

            # --- detection latency ---
            victims = []
            for i in range(TRIALS):
                port = _port()
                victims.append((SiteTarget(name=f"victim{i}", domain=f"victim{i}.bench.lab.test",
                                           address="127.0.0.1", server="local", port=port), _serve(work, port)))
            procs += [p for _, p in victims]
            fired: dict[str, float] = {}

            def log(msg: str) -> None:
                if msg.startswith("firing: site-down on pressfleet.site.victim"):
                    fired[msg.split("pressfleet.site.", 1)[1].split()[0]] = time.monotonic()

            w2 = Watcher(interval=INTERVAL, refresh=1e12, store=AlertStore(work / "lat.db"),
                         metrics_url=f"sqlite:///{work / 'metrics.db'}", log=log)
            w2.fleet = Fleet([v for v, _ in victims], [], list(DEFAULT_RULES), {}, [])
            w2.fleet_at = time.time()
            latencies = []

            async def trials():
                task = asyncio.create_task(w2.run())
                await asyncio.sleep(INTERVAL + 5)  # a round with everything up first
                rng = random.Random(13)
                for target, proc in victims:
                    await asyncio.sleep(rng.uniform(0, INTERVAL))
                    t0 = time.monotonic()
                    await asyncio.to_thread(_stop, proc)
                    while target.name not in fired and time.monotonic() - t0 < 3 * INTERVAL:
                        await asyncio.sleep(0.2)
                    latencies.append(round(fired.get(target.name, float("nan")) - t0, 2))
                w2.stopping.set()
                await task

            asyncio.run(trials())
    finally:
        for p in procs:
            _stop(p)
    share = cpu / INTERVAL
    write_result("watch", {
        "detection_latency_seconds": {"median": statistics.median(latencies), "trials": latencies,
                                      "interval_seconds": INTERVAL, "retry_after_seconds": 3.0},
        "capacity": {"sites": SITES, "servers": SERVERS, "round_wall_seconds": round(wall, 2),
                     "round_cpu_seconds": round(cpu, 3), "cpu_share_of_one_core": round(share, 4),
                     "target_cpu_share": TARGET_CPU_SHARE, "met": share < TARGET_CPU_SHARE,
                     "rounds": [{k: r[k] for k in ("seconds", "cpu_seconds", "sites", "servers")} for r in rounds]},
    })
