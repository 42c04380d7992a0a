"""The watcher: a long-running service that probes the fleet every 30 seconds and raises and resolves alerts.

`pressfleet stack up` starts it beside the Prefect server and worker (`python -m pressfleet.watch`, PID in the
stack's run folder) and `pressfleet stack down` stops it. Every round it
1. reads the fleet from the Prefect API (WordPress Site and Server blocks, the Alert Rule and Alert Policy blocks;
   again every `refresh` seconds, so a site added in the UI is watched from the next round),
2. probes every site over HTTPS and every server's SSH port (pressfleet.watch.probes),
3. writes the results to the metrics store (`probe_up`, `probe_http_status`, `probe_ttfb_seconds`,
   `probe_tls_days_left` per site, `ssh_up` per server) and adds collection's latest observations,
4. runs the rules (pressfleet.alerts.rules.evaluate: `for`, hysteresis, silences, inhibition),
5. emits `pressfleet.alert.firing` / `.resolved` / `.reminder` events, which the policies' automations turn into
   messages, and saves the alerts' states (pressfleet.alerts.store) for the CLI and a restart.
A round that fails (the Prefect API away, the store locked) is logged and the next one runs.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource as rusage
import signal
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from pressfleet.alerts import events as alert_events
from pressfleet.alerts.rules import DEFAULT_RULES, Observation, Resource, Rule, evaluate
from pressfleet.alerts.store import AlertStore
from pressfleet.dr.fencing import complete_fences
from pressfleet.paths import private_dirs, state_dir
from pressfleet.watch.probes import ServerTarget, SiteTarget, probe_all

OBSERVATION_MAX_AGE = 900  # collection runs every 5 minutes: older observations are no data
# ...but the forecast runs daily and a backup's size is known once a night: theirs hold for a day and a bit
DAILY_CHECKS = {"disk_full_days": 26 * 3600, "backup_size_ratio": 26 * 3600, "dr_drill_failed": 8 * 86400}


def status_path():
    return state_dir() / "watch" / "status.json"


@dataclass
class Fleet:
    sites: list[SiteTarget]
    servers: list[ServerTarget]
    rules: list[Rule]
    policies: dict[str, Any]  # name -> AlertPolicy
    notes: list[str]

    def resources(self) -> list[Resource]:
        out = [Resource("server", s.name, s.tags, address=s.address) for s in self.servers]
        out += [Resource("site", s.name, s.tags, server=s.server, address=s.domain) for s in self.sites]
        return out


def load_fleet(only_sites: frozenset[str] | None = None) -> Fleet:
    """Sites, servers, rules and policies from the Prefect API (secrets are not read). With `only_sites`, those
    sites alone and the servers they are on (a watcher for a part of the fleet)."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import PrefectHTTPStatusError

    from blocks.alerts import AlertPolicy, AlertRule

    notes: list[str] = []

    def docs(client, slug: str):
        try:
            return [d for d in client.read_block_documents_by_type(block_type_slug=slug, include_secrets=False)
                    if d.name and not d.is_anonymous]
        except PrefectHTTPStatusError as exc:
            if exc.response.status_code == 404:
                return []
            raise

    with get_client(sync_client=True) as client:
        server_docs, site_docs = docs(client, "server"), docs(client, "wordpress-site")
        rule_docs, policy_docs = docs(client, "alert-rule"), docs(client, "alert-policy")
    servers: dict[str, ServerTarget] = {}
    for d in server_docs if only_sites is None else ():
        data = d.data or {}
        if data.get("address"):
            servers[d.name] = ServerTarget(d.name, str(data["address"]), int(data.get("port") or 22))
    sites: list[SiteTarget] = []
    for d in site_docs:
        data = d.data or {}
        if only_sites is not None and str(data.get("name")) not in only_sites:
            continue
        srv = data.get("server") or {}
        ref = (d.block_document_references or {}).get("server", {}).get("block_document", {})
        if not isinstance(srv, dict) or not srv.get("address") or not data.get("domain"):
            notes.append(f"site block {d.name}: no server address, not watched")
            continue
        # a saved Server block is named by its block; an inline one as collect-metrics names it (host_label)
        server_name = ref.get("name") or _host(str(srv["address"]), int(srv.get("port") or 22))
        if server_name not in servers:
            servers[server_name] = ServerTarget(server_name, str(srv["address"]), int(srv.get("port") or 22))
        sites.append(SiteTarget(name=str(data["name"]), domain=str(data["domain"]), address=str(srv["address"]),
                                server=server_name, keyword=str(data.get("watch_keyword") or ""),
                                tags=tuple(str(t) for t in data.get("tags") or ())))
    rules: list[Rule] = []
    for d in rule_docs:
        try:
            rules.append(AlertRule(**(d.data or {})).rule())
        except ValueError as exc:
            notes.append(f"alert rule block {d.name} is not used: {exc}")
    if not rule_docs:
        rules = list(DEFAULT_RULES)
    policies = {}
    for d in policy_docs:
        try:
            policies[d.name] = AlertPolicy(**(d.data or {}))
        except ValueError as exc:
            notes.append(f"alert policy block {d.name} is not used: {exc}")
    return Fleet(sorted(sites, key=lambda s: s.name), sorted(servers.values(), key=lambda s: s.name), rules,
                 policies, notes)


def _host(address: str, port: int = 22) -> str:
    return address if port == 22 else f"{address}:{port}"


class Watcher:
    def __init__(self, *, interval: float = 30.0, refresh: float = 30.0, retry_after: float = 3.0,
                 store: AlertStore | None = None, metrics_url: str | None = None, log=print,
                 only_sites: frozenset[str] | None = None) -> None:
        self.only_sites = only_sites
        self.interval, self.refresh, self.retry_after = interval, refresh, retry_after
        self.store = store or AlertStore()
        self.metrics_url = metrics_url
        self.log = log
        self.fleet: Fleet | None = None
        self.fleet_at = 0.0
        self.noted: set[str] = set()
        self.states = self.store.load_states()
        self.reminded: dict[str, float] = {}
        self.stopping = asyncio.Event()
        self.rounds = 0

    def _fleet(self, now: float) -> Fleet:
        if self.fleet is None or now - self.fleet_at >= self.refresh:
            fleet = load_fleet(self.only_sites)
            for note in fleet.notes:
                if note not in self.noted:  # once, not every refresh
                    self.log(f"fleet: {note}")
            self.noted = set(fleet.notes)
            self.fleet, self.fleet_at = fleet, now
        return self.fleet

    async def run_round(self) -> dict:
        started, cpu0 = time.monotonic(), _cpu()
        now = time.time()
        fleet = await asyncio.to_thread(self._fleet, now)
        site_results, server_results = await probe_all(fleet.sites, fleet.servers, retry_after=self.retry_after)
        now = time.time()
        obs = fresh_observations(self.store, now)
        points: list[dict] = []
        at = datetime.fromtimestamp(int(now), timezone.utc)
        for r in server_results:
            rid = f"pressfleet.server.{r.target.name}"
            obs[(rid, "ssh_up")] = Observation(1.0 if r.up else 0.0, {"address": r.target.address, "port": r.target.port,
                                                                    "error": r.error, "retried": r.retried})
            points.append({"time": at, "host": _host(r.target.address, r.target.port), "site": "", "metric": "ssh_up",
                           "value": 1.0 if r.up else 0.0})
        for r in site_results:
            t = r.target
            rid = f"pressfleet.site.{t.name}"
            ev = {"domain": t.domain, "server": t.server, "address": t.address, "status": r.status,
                  "error": r.error, "retried": r.retried}
            obs[(rid, "site_up")] = Observation(1.0 if r.up else 0.0, ev)
            obs[(rid, "http_status")] = Observation(float(r.status), ev)
            host = _host(t.address)
            points.append({"time": at, "host": host, "site": t.domain, "metric": "probe_up", "value": 1.0 if r.up else 0.0})
            points.append({"time": at, "host": host, "site": t.domain, "metric": "probe_http_status", "value": float(r.status)})
            if r.ttfb is not None:
                obs[(rid, "ttfb_seconds")] = Observation(r.ttfb, ev)
                points.append({"time": at, "host": host, "site": t.domain, "metric": "probe_ttfb_seconds", "value": r.ttfb})
            if r.tls_days_left is not None:
                obs[(rid, "tls_days_left")] = Observation(round(r.tls_days_left, 2), ev)
                points.append({"time": at, "host": host, "site": t.domain, "metric": "probe_tls_days_left",
                               "value": round(r.tls_days_left, 3)})
            if r.keyword_found is not None:
                obs[(rid, "keyword_found")] = Observation(1.0 if r.keyword_found else 0.0, {**ev, "keyword": t.keyword})
        if points:
            await asyncio.to_thread(self._write_points, points)
        silences = self.store.silences(now)
        rnd = evaluate(fleet.rules, fleet.resources(), obs, self.states, now, silences)
        from blocks.alerts import policy_for

        rule_by_name = {r.name: r for r in fleet.rules}
        sent = 0
        for notice in rnd.notices:
            policy = policy_for(notice.rule, fleet.policies) if fleet.policies else "default"
            acked_at = None
            if notice.event == "resolved":
                acked = self.store.find(notice.state.alert_id)
                acked_at = acked.acked_at if acked and acked.acked_at else None
            alert_events.emit(notice, policy=policy, now=now, levels=_levels(fleet.policies.get(policy or "")),
                              acked_at=acked_at)
            self.store.record(notice.state.alert_id, notice.event, now, rule=notice.rule.name,
                              resource=notice.resource.resource_id, value=notice.state.value,
                              detail=json.dumps(dict(notice.state.evidence), default=str)[:2000])
            self.log(f"{notice.event}: {notice.rule.name} on {notice.resource.resource_id} "
                     f"(alert {notice.state.alert_id}, value {notice.state.value}, policy {policy})")
            sent += 1
            if notice.event == "firing":
                self.reminded[notice.state.alert_id] = now
        # reminders: every repeat_hours while firing, notified and not acked
        for key, st in rnd.states.items():
            if not (st.status == "firing" and st.notified):
                continue
            rule = rule_by_name.get(key[0])
            policy = policy_for(rule, fleet.policies) if rule and fleet.policies else "default"
            pol = fleet.policies.get(policy or "")
            every = (pol.repeat_hours if pol else 4.0) * 3600
            last = self.reminded.setdefault(st.alert_id, now)
            if now - last >= every and not self.store.acked(st.alert_id):
                res = next((r for r in fleet.resources() if r.resource_id == key[1]), None)
                if res and rule:
                    alert_events.emit_reminder(st, rule, res, policy=policy, now=now)
                    self.reminded[st.alert_id] = now
        meta = {}
        for key, st in rnd.states.items():
            rule = rule_by_name.get(key[0])
            meta[key] = {"severity": rule.severity if rule else "", "summary": rule.describe(st.value) if rule else "",
                         "policy": (policy_for(rule, fleet.policies) if rule and fleet.policies else "default") or "",
                         "suppressed": rnd.suppressed.get(key, "")}
        self.store.save_states(rnd.states, meta, now)
        self.states = rnd.states
        self.rounds += 1
        summary = {"time": now, "round": self.rounds, "seconds": round(time.monotonic() - started, 3),
                   "cpu_seconds": round(_cpu() - cpu0, 3), "sites": len(fleet.sites), "servers": len(fleet.servers),
                   "sites_down": sum(not r.up for r in site_results),
                   "down": sorted(r.target.domain for r in site_results if not r.up)[:100],
                   "watched": sorted(s.domain for s in fleet.sites),
                   "servers_down": sum(not r.up for r in server_results),
                   "active_alerts": sum(1 for s in rnd.states.values() if s.active), "notices": sent,
                   "interval": self.interval, "pid": os.getpid(), "cpu_total_seconds": round(_cpu(), 3)}
        _write_status(summary)
        return summary

    def _write_points(self, points: list[dict]) -> None:
        from pressfleet.metrics.store import open_store

        store = open_store(self.metrics_url)
        try:
            store.write_points(points)
        finally:
            store.close()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        self.log(f"watcher {os.getpid()} up: every {self.interval:g} s, state {self.store.path}")
        next_at = time.monotonic()
        while not self.stopping.is_set():
            try:
                s = await self.run_round()
                self.log(f"round {s['round']}: {s['sites']} sites, {s['servers']} servers, {s['sites_down']} sites "
                         f"down, {s['servers_down']} servers down, {s['active_alerts']} active, {s['seconds']:.2f} s")
            except Exception as exc:  # noqa: BLE001 - one bad round (API away, a locked store) must not stop watching
                self.log(f"round failed: {type(exc).__name__}: {str(exc)[:500]}")
            try:  # an old primary a failover could not reach: fenced as soon as it answers again
                for done in await asyncio.to_thread(complete_fences):
                    self.log(done)
            except Exception as exc:  # noqa: BLE001 - reported; the next round tries again
                self.log(f"fencing check failed: {type(exc).__name__}: {str(exc)[:300]}")
            next_at += self.interval
            delay = next_at - time.monotonic()
            if delay < 0:
                next_at = time.monotonic()
                delay = 0
            try:
                await asyncio.wait_for(self.stopping.wait(), delay)
            except asyncio.TimeoutError:
                pass
        await asyncio.to_thread(alert_events.flush)  # drain_all is a coroutine when called on a loop
        self.log("watcher stopped")


def fresh_observations(store: AlertStore, now: float) -> dict[tuple[str, str], Observation]:
    """The observations of the flows young enough to count: 15 minutes, a day and a bit for the daily ones."""
    oldest = now - max(OBSERVATION_MAX_AGE, *DAILY_CHECKS.values())
    return {key: o for key, (o, at) in store.observations_at(newer_than=oldest).items()
            if at >= now - DAILY_CHECKS.get(key[1], OBSERVATION_MAX_AGE)}


def _levels(policy) -> list[float]:
    return [lv.after_minutes for lv in policy.levels] if policy is not None else [0.0]


def _cpu() -> float:
    r = rusage.getrusage(rusage.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _write_status(summary: dict) -> None:
    path = status_path()
    private_dirs(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(summary))
    tmp.replace(path)


def read_status() -> dict | None:
    try:
        return json.loads(status_path().read_text())
    except (OSError, ValueError):
        return None


def main(argv: list[str] | None = None) -> int:
    import argparse

    from pressfleet.paths import use_private_umask

    ap = argparse.ArgumentParser(prog="python -m pressfleet.watch", description=__doc__.splitlines()[0])
    ap.add_argument("--interval", type=float, default=float(os.environ.get("PRESSFLEET_WATCH_INTERVAL", "30")))
    ap.add_argument("--refresh", type=float, default=float(os.environ.get("PRESSFLEET_WATCH_REFRESH", "30")))
    ap.add_argument("--retry-after", type=float, default=3.0)
    ap.add_argument("--sites", default=os.environ.get("PRESSFLEET_WATCH_SITES", ""),
                    help="Only these sites (names, comma-separated) and their servers; default: the whole fleet.")
    args = ap.parse_args(argv)
    only = frozenset(n.strip() for n in args.sites.split(",") if n.strip()) or None
    if only:
        from pressfleet import validate

        only = frozenset(validate.site_name(n) for n in only)
    use_private_umask()
    w = Watcher(interval=args.interval, refresh=args.refresh, retry_after=args.retry_after, only_sites=only,
                log=lambda m: print(f"{time.strftime('%H:%M:%S')} {m}", flush=True))
    asyncio.run(w.run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
