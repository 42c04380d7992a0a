"""A disaster-recovery drill: measure each standby's RPO and RTO on a schedule, without touching the primary.

For each site with a standby: a write load runs on the primary (commits whose acknowledgement is seen here);
then the standby is cut off from its primary (its firewall drops the primary's packets: the primary as the
standby sees it, lost) and promoted on its own, as a failover would (what it received applied, replication
removed, writes allowed). RPO is the acknowledged writes from before the cut that the promoted copy lacks
(in writes and in seconds); RTO is the cut to the first 200 from the promoted standby, plus the pair's
`failover_after_s` (the wait an automatic failover has before it acts). The standby is then put back: cut
removed, re-seeded from a fresh snapshot (what it took while promoted is discarded), replicating again.
The primary keeps serving throughout; with semi-sync its commits wait once for up to the
semi-sync timeout (5 s) when the standby drops out, then go on asynchronously, as in any standby outage. Results: an artifact, the metrics
`dr_rto_seconds`, `dr_rpo_writes`, `dr_rpo_seconds` (per site), and a failed drill alerts (rule dr-drill-failed).
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Optional

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from pressfleet.dr import checks
from pressfleet.dr.load import TABLE, WriteLoad, create_sql
from pressfleet.ssh.remote import run
from tasks import standby as sb

CUT_TABLE = "pf_drill_cut"


def isolation_rules(table: str, address: str) -> str:
    """An nftables table that drops every packet from and to ADDRESS (a cut between two servers)."""
    from pressfleet import validate

    address = validate.hostname(address)
    return (f"table inet {table} {{\n  chain input {{\n    type filter hook input priority -10; policy accept;\n"
            f"    ip saddr {address} drop\n  }}\n  chain output {{\n    type filter hook output priority -10; "
            f"policy accept;\n    ip daddr {address} drop\n  }}\n}}\n")


def _cut(conn, primary_address: str, on: bool) -> None:
    if on:
        run(conn, ["nft", "-f", "-"], stdin=isolation_rules(CUT_TABLE, primary_address))
    else:
        run(conn, ["sh", "-c", f"nft list table inet {CUT_TABLE} >/dev/null 2>&1 && nft delete table inet {CUT_TABLE}; true"])


def drill_one(pair, *, load_seconds: float = 2.0, log=print) -> dict:
    """One site's drill (see the module); the standby replicates again at its end, whatever happened."""
    from flows.standby import setup_replication, site_block, wait_replicating

    domain = site_block(pair.site).domain
    result = {"site": pair.site, "primary": pair.primary.address, "standby": pair.standby.address,
              "replication": "semi-sync" if pair.semisync else "async", "ok": False, "problems": []}
    p_conn, s_conn = pair.primary.connect(), pair.standby.connect()
    try:
        sb.sql(p_conn, f"USE `{pair.site}`;\n{create_sql()}DELETE FROM {TABLE};\n")
        load = WriteLoad(p_conn, pair.site, max_seconds=load_seconds + 15).start()
        load.wait_for(20, timeout=20)
        time.sleep(load_seconds)
        _cut(s_conn, pair.primary.address, True)
        cut = time.monotonic()
        try:
            time.sleep(1.0)  # writes after the cut: not counted
            load.stop()
            before = load.acked_before(cut)
            sb.promote(s_conn, pair.site, apply_timeout=30)
            answered = None
            while time.monotonic() - cut < 60:
                if checks.site_answers(domain, pair.standby.address) == 200:
                    answered = time.monotonic()
                    break
                time.sleep(0.1)
            present = set(map(int, sb.sql(s_conn, f"SELECT n FROM `{pair.site}`.{TABLE};\n").split()))
        finally:
            _cut(s_conn, pair.primary.address, False)
        lost = [(n, at) for n, at in before if n not in present]
        result.update(acked_before_cut=len(before), rpo_writes=len(lost),
                      rpo_seconds=round(cut - min(at for _, at in lost), 3) if lost else 0.0,
                      promote_seconds=round(answered - cut, 2) if answered else None,
                      rto_seconds=round(answered - cut + pair.failover_after_s, 2) if answered else None)
        if answered is None:
            result["problems"].append("the promoted standby did not answer 200 within 60 s")
        if pair.semisync and lost:
            result["problems"].append(f"{len(lost)} acknowledged write(s) lost with semi-sync replication")
        if load.error and not before:
            result["problems"].append(f"the write load failed: {load.error}")
    except Exception as exc:  # noqa: BLE001 - a drill that breaks is a failed drill, reported
        result["problems"].append(f"{type(exc).__name__}: {exc}")
    finally:
        p_conn.close()
        s_conn.close()
    try:  # the standby back as it was: a fresh snapshot, replicating, read-only
        setup_replication(pair, log=log)
        status = wait_replicating(pair)
        if not status.replicating:
            result["problems"].append(f"the standby does not replicate after the drill: {status.line()}")
        conn = pair.primary.connect()
        try:
            sb.sql(conn, f"DROP TABLE IF EXISTS `{pair.site}`.{TABLE};\n")
        finally:
            conn.close()
    except Exception as exc:  # noqa: BLE001
        result["problems"].append(f"putting the standby back failed: {type(exc).__name__}: {exc}")
    result["ok"] = not result["problems"]
    return result


def _publish(results: list[dict], at: datetime) -> None:
    from flows.standby import site_block
    from pressfleet.alerts.store import put_observations
    from pressfleet.metrics import collect
    from pressfleet.metrics.store import open_store

    points, rows = [], []
    for r in results:
        domain = site_block(r["site"]).domain
        samples = [collect.Sample(name, float(r[key]), site=domain) for name, key in
                   (("dr_rto_seconds", "rto_seconds"), ("dr_rpo_writes", "rpo_writes"), ("dr_rpo_seconds", "rpo_seconds"))
                   if r.get(key) is not None]
        points += collect.to_points(r["standby"], at, samples)
        rows.append((f"pressfleet.site.{r['site']}", "dr_drill_failed", 0.0 if r["ok"] else 1.0,
                     {"problems": "; ".join(r["problems"]), "rto_seconds": r.get("rto_seconds"),
                      "rpo_writes": r.get("rpo_writes")}))
    open_store().write_points(points)
    put_observations(rows, at.timestamp(), log=get_run_logger().warning)


@flow(name="dr-drill")
def dr_drill(site: Optional[str] = None, load_seconds: float = 2.0) -> list[dict]:
    """Drill every site with a standby (or SITE): RPO and RTO measured on the standby, the primary untouched."""
    from pressfleet.dr.pairs import saved_pairs

    log = get_run_logger()
    pairs = [p for p in saved_pairs() if p.standby_state == "replica" and (site is None or p.site == site)]
    if site is not None and not pairs:
        from blocks.standby import load_pair

        load_pair(site)
        raise RuntimeError(f"{site}'s standby is not replicating (a failover left it fenced): fail back first")
    at = datetime.now(timezone.utc).replace(microsecond=0)
    results = []
    for pair in pairs:
        r = drill_one(pair, load_seconds=load_seconds, log=log.info)
        log.info("%s: RPO %s write(s) (%s s), RTO %s s (%s replication)%s", r["site"], r.get("rpo_writes"),
                 r.get("rpo_seconds"), r.get("rto_seconds"), r["replication"],
                 "" if r["ok"] else f"; FAILED: {'; '.join(r['problems'])}")
        results.append(r)
    if results:
        _publish(results, at)
    lines = ["# DR drill", "", f"{at.isoformat()}: the standby cut off from its primary and promoted alone; the "
             "primary served throughout.", "",
             "| site | replication | acked before the cut | lost (RPO) | RPO s | promoted to 200 s | RTO s | result |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        lines.append(f"| {r['site']} | {r['replication']} | {r.get('acked_before_cut', '-')} | {r.get('rpo_writes', '-')} "
                     f"| {r.get('rpo_seconds', '-')} | {r.get('promote_seconds', '-')} | {r.get('rto_seconds', '-')} | "
                     f"{'pass' if r['ok'] else 'FAIL: ' + '; '.join(r['problems'])} |")
    create_markdown_artifact(key="dr-drill", markdown="\n".join(lines), description="DR drill: RPO and RTO per site")
    failed = [r for r in results if not r["ok"]]
    if failed:
        raise RuntimeError("dr-drill failed: " + "; ".join(f"{r['site']}: {'; '.join(r['problems'])}" for r in failed))
    return results
