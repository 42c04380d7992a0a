"""Fail a site over to its standby, and back.

`failover` (a person's, or the automatic one the `pressfleet-dr` automation runs on the watcher's site-down
alert): checks the standby (healthy, how far behind), fences the old primary (its site's database read-only
and its connections closed, its cron and file sync stopped; withdrawn from traffic when it cannot be reached,
and fenced for good when it comes back), promotes the standby (what it received applied, replication removed,
writes allowed, caches flushed), switches traffic, then checks that the site answers 200 from the new primary.
Every step is logged with its time since the start. An automatic failover needs the primary down from every
vantage point that can look (the control side, the front, the standby) for the pair's `failover_after_s`, and
never runs within the cool-down after the last one.

`failback`: the old primary rejoins as the standby of the new one (re-seeded from a fresh snapshot, so GTIDs
that diverged are not a problem: what only the old primary had is counted and saved aside first); with
`switch`, the roles then switch back through a planned failover with the same checks.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Optional

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from blocks.standby import StandbyPair, load_pair, pair_block_name
from flows.standby import setup_replication, site_block
from pressfleet import validate
from pressfleet.dr import checks
from pressfleet.dr import replication as rep
from pressfleet.dr.decide import Decision, Views, decide
from pressfleet.dr.traffic import traffic_for
from tasks import standby as sb

SSH_TIMEOUT = 3.0


class FailoverRefused(RuntimeError):
    """The failover did not run: the reason says why (nothing was changed)."""


class _Clock:
    def __init__(self, log) -> None:
        self.started, self.log, self.steps = time.monotonic(), log, []

    def mark(self, what: str) -> None:
        at = round(time.monotonic() - self.started, 2)
        self.steps.append((at, what))
        self.log.info("[%6.2f s] %s", at, what)


def _try_connect(server, timeout: float = SSH_TIMEOUT):
    try:
        return server.connect(connect_timeout=timeout, refused_wait=0)
    except Exception:  # noqa: BLE001 - unreachable is an answer here
        return None


def gather_views(pair: StandbyPair, domain: str, *, ssh_timeout: float = SSH_TIMEOUT) -> Views:
    """The primary seen from the control side, the traffic side and the standby, in parallel. A person's
    failover gives SSH longer (a loaded server answers late); the automatic one keeps it short (a dead server
    must not hold it up)."""
    def control() -> Optional[bool]:
        return checks.site_answers(domain, pair.primary.address) == 200

    def front() -> Optional[bool]:
        return traffic_for(pair).view(pair).get(pair.primary.address)

    def standby() -> tuple[Optional[bool], bool, Optional[int], Optional[int]]:
        conn = _try_connect(pair.standby, ssh_timeout)
        if conn is None:
            return None, False, None, None
        try:
            status = sb.replica_status(conn, pair.site)
            seen = checks.site_answers_from(conn, domain, pair.primary.address) == 200
            io_up = status is not None and status.io_running == "Yes"
            healthy = checks.site_answers_from(conn, domain, "127.0.0.1") == 200
            return (seen or io_up), healthy, (status.seconds_behind if status else None), None
        finally:
            conn.close()

    def behind() -> Optional[int]:
        conn = _try_connect(pair.primary, ssh_timeout)
        if conn is None:
            return None
        try:
            primary_pos = sb.gtid_binlog_pos(conn)
        finally:
            conn.close()
        s = _try_connect(pair.standby, ssh_timeout)
        if s is None:
            return None
        try:
            applied = sb.sql(s, "SELECT @@gtid_slave_pos;\n").strip()
        finally:
            s.close()
        return rep.gtid_distance(primary_pos, applied, rep.server_id(pair.primary.address))

    with ThreadPoolExecutor(4) as pool:
        c, f, s, b = pool.submit(control), pool.submit(front), pool.submit(standby), pool.submit(behind)
        seen, healthy, seconds, _ = s.result()
        return Views(control=c.result(), front=f.result(), standby=seen, standby_healthy=healthy,
                     behind_transactions=b.result(), behind_seconds=seconds)


def _wait_for_decision(pair: StandbyPair, domain: str, clock: _Clock, *, force: bool) -> tuple[Decision, Views]:
    """An automatic failover's watch: the primary must stay down from every view for failover_after_s."""
    down_since = None
    # Long enough to see the primary stay down (with a margin for slow checks), short enough that a partition
    # of the control side ends the run with its reason instead of holding a worker.
    deadline = time.monotonic() + pair.failover_after_s * 2 + 15
    while True:
        views = gather_views(pair, domain)
        now = datetime.now(timezone.utc)
        d = decide(views, automatic=True, force=force, max_behind=pair.max_behind, last_failover=pair.last_failover,
                   cooldown=timedelta(minutes=pair.cooldown_minutes), now=now)
        if d.go:
            down_since = down_since or time.monotonic()
            held = time.monotonic() - down_since
            if held >= pair.failover_after_s:
                clock.mark(f"primary down from every view for {held:.1f} s: {d.reason}")
                return d, views
        else:
            if down_since is not None:
                clock.mark(f"not failing over yet: {d.reason}")
            down_since = None
            if views.control or "cool-down" in d.reason or "standby does not answer" in d.reason:
                return d, views
        if time.monotonic() > deadline:
            return d, views
        time.sleep(1.0)


def _notify(site: str, subject: str, body: str, severity: str = "critical") -> None:
    """A notice the site's Alert Policy delivers to its level 1 at once. Sent as a reminder event: level 1's
    automation delivers those, and only a firing event escalates to levels 2 and 3 until someone acks it in
    the watcher's store, where this one-off notice is not."""
    from prefect.events import emit_event

    from pressfleet.alerts.automations import REMINDER

    emit_event(event=REMINDER,
               resource={"prefect.resource.id": f"pressfleet.site.{site}", "prefect.resource.name": site,
                         "pressfleet.alert.id": f"dr-{site}-{int(time.time())}", "pressfleet.alert.rule": "failover",
                         "pressfleet.alert.severity": severity, "pressfleet.alert.policy": _policy_of(site),
                         "pressfleet.alert.level": "1"},
               payload={"subject": subject, "body": body, "rule": "failover"})


def _policy_of(site: str) -> str:
    """The Alert Policy the site-down rule's alerts go to (the failover notice goes to the same people)."""
    from prefect.client.orchestration import get_client

    from blocks.alerts import AlertPolicy, policy_for
    from pressfleet.alerts.rules import DEFAULT_RULES

    try:
        with get_client(sync_client=True) as client:
            docs = client.read_block_documents_by_type(block_type_slug="alert-policy", include_secrets=False)
        policies = {d.name: AlertPolicy(**(d.data or {})) for d in docs if d.name and not d.is_anonymous}
    except Exception:  # noqa: BLE001 - no policy type registered: the event is still recorded
        return ""
    rule = next(r for r in DEFAULT_RULES if r.name == "site-down")
    return (policy_for(rule, policies) if policies else "default") or ""


def switch_roles(pair: StandbyPair, *, fenced: bool) -> StandbyPair:
    """The pair with its servers swapped, saved; the site block's server is the new primary."""
    new = pair.model_copy(update={"primary": pair.standby, "standby": pair.primary,
                                  "standby_state": "fenced" if fenced else "fence-pending",
                                  "last_failover": datetime.now(timezone.utc)})
    new.save(pair_block_name(pair.site), overwrite=True)
    block = site_block(pair.site)
    from pressfleet.fleet.sites import site_block_name

    moved = type(block)(**{**block.model_dump(exclude={"server"}), "server": new.primary})
    moved.save(site_block_name(pair.site), overwrite=True)
    return new


@flow(name="failover")
def failover(site: str, to: Optional[str] = None, automatic: bool = False, force: bool = False) -> dict:
    """Make SITE's standby its primary. `to` (optional) must name the standby's address; `force` fails over
    onto a standby further behind than the pair allows (the report says how many transactions are lost)."""
    log = get_run_logger()
    clock = _Clock(log)
    pair = load_pair(validate.site_name(site))
    if to is not None and validate.hostname(to) != pair.standby.address:
        raise validate.InvalidInput(f"{site}'s standby is {pair.standby.address}, not {to}")
    if pair.standby_state != "replica":
        raise FailoverRefused(f"{site}'s standby {pair.standby.address} is {pair.standby_state} (the old primary "
                              f"of the last failover): run `pressfleet failback {site}` first")
    domain = site_block(site).domain
    clock.mark(f"failover of {site}: primary {pair.primary.address}, standby {pair.standby.address}"
               f"{' (automatic)' if automatic else ''}")
    if automatic:
        if not pair.auto_failover:
            raise FailoverRefused(f"{site}: automatic failover is off for this pair")
        decision, views = _wait_for_decision(pair, domain, clock, force=force)
    else:
        views = gather_views(pair, domain, ssh_timeout=15)
        decision = decide(views, automatic=False, force=force, max_behind=pair.max_behind,
                          last_failover=pair.last_failover, cooldown=timedelta(minutes=pair.cooldown_minutes),
                          now=datetime.now(timezone.utc))
    clock.mark(f"views: control {views.control}, front {views.front}, standby {views.standby}, standby healthy "
               f"{views.standby_healthy}, behind {views.behind_transactions} transaction(s)")
    if not decision.go:
        clock.mark(f"no failover: {decision.reason}")
        if automatic and views.control is False:
            _notify(site, f"[CRITICAL] failover not done: {site}", f"The watcher saw {site} down; pressfleet did not "
                    f"fail it over: {decision.reason}.\n\nRun `pressfleet failover {site}` to fail over by hand.")
        if not automatic:
            raise FailoverRefused(decision.reason)
        return {"site": site, "failed_over": False, "reason": decision.reason, "steps": clock.steps}
    for note in decision.notes:
        clock.mark(note)

    old = _try_connect(pair.primary)
    fenced, last_pos = False, None
    if old is not None:
        try:
            for change in sb.fence(old, site):
                clock.mark(f"fenced {pair.primary.address}: {change}")
            fenced = True
            gtid_domain = rep.server_id(pair.primary.address)
            mine = rep.parse_gtid_list(sb.gtid_binlog_pos(old)).get(gtid_domain)
            last_pos = f"{gtid_domain}-{mine[0]}-{mine[1]}" if mine else None
        except Exception as exc:  # noqa: BLE001 - it went away during the fence: withdrawn from traffic instead
            clock.mark(f"fencing {pair.primary.address} failed ({type(exc).__name__}): withdrawn from traffic only")
        finally:
            old.close()
    else:
        clock.mark(f"{pair.primary.address} cannot be reached: withdrawn from traffic; fenced when it returns")
    new_conn = pair.standby.connect(connect_timeout=SSH_TIMEOUT)
    try:
        for change in sb.promote(new_conn, site, until=last_pos):
            clock.mark(f"promoted {pair.standby.address}: {change}")
        sb.flush_caches_of(new_conn, site_block(site).config())
        applied = sb.sql(new_conn, "SELECT @@gtid_slave_pos;\n").strip()
        clock.mark(f"caches of {site} flushed on {pair.standby.address}; applied up to {applied}")
    finally:
        new_conn.close()
    new = switch_roles(pair, fenced=fenced)
    clock.mark(f"{site}'s primary is now {new.primary.address} (pair and site block saved)")
    for change in traffic_for(new).apply(new):
        clock.mark(f"traffic: {change}")
    address = new.front.public_address if new.traffic == "front" else new.primary.address
    ok = False
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if checks.site_answers(domain, address) == 200:
            ok = True
            break
        time.sleep(0.2)
    clock.mark(f"{domain} answers 200 through {address}" if ok else f"{domain} does NOT answer 200 through {address}")
    how = "automatically" if automatic else "by a person"
    _notify(site, f"[CRITICAL] {site} failed over {how} to {new.primary.address}",
            "\n".join([f"{site} failed over {how}: {decision.reason}.",
                       f"New primary: {new.primary.address}; old primary {new.standby.address} is "
                       f"{'fenced' if fenced else 'withdrawn from traffic (fenced when it returns)'}.",
                       f"Applied up to GTID {applied}.", "", "Steps:",
                       *(f"  {at:6.2f} s  {what}" for at, what in clock.steps), "",
                       f"When the old primary is healthy: pressfleet failback {site}"]))
    create_markdown_artifact(
        key=f"failover-{site.replace('_', '-')}",
        markdown="\n".join([f"# Failover of {site}", "", f"{decision.reason}.", "", "| at (s) | step |",
                            "| --- | --- |", *(f"| {at} | {what} |" for at, what in clock.steps)]),
        description=f"{site} failed over to {new.primary.address}")
    if not ok:
        raise RuntimeError(f"{site} failed over to {new.primary.address} but does not answer 200 through {address}")
    return {"site": site, "failed_over": True, "primary": new.primary.address, "old_primary": new.standby.address,
            "fenced": fenced, "seconds": clock.steps[-1][0], "steps": clock.steps, "reason": decision.reason}


@flow(name="failback")
def failback(site: str, switch: bool = False) -> dict:
    """The old primary of SITE's last failover rejoins as its standby; with `switch`, it then becomes the
    primary again through a planned failover (same checks)."""
    log = get_run_logger()
    clock = _Clock(log)
    pair = load_pair(validate.site_name(site))
    if pair.standby_state == "replica" and not switch:
        raise validate.InvalidInput(f"{site}'s standby {pair.standby.address} already replicates from "
                                    f"{pair.primary.address}: nothing to rejoin (--switch switches the roles)")
    diverged = 0
    if pair.standby_state != "replica":
        conn = pair.standby.connect(connect_timeout=SSH_TIMEOUT)
        try:
            sb.fence(conn, site)  # first of all: it takes no write while it rejoins
            mine = sb.gtid_binlog_pos(conn)
        finally:
            conn.close()
        new = pair.primary.connect(connect_timeout=SSH_TIMEOUT)
        try:
            theirs = sb.sql(new, "SELECT @@gtid_binlog_pos;\n").strip()
        finally:
            new.close()
        diverged = rep.gtid_distance(mine, theirs, rep.server_id(pair.standby.address))
        clock.mark(f"{pair.standby.address} had {diverged} transaction(s) of its own the new primary never got"
                   + (" (lost at the failover; saved aside before the resync)" if diverged else ""))
        if diverged:
            conn = pair.standby.connect()
            try:
                sb.save_aside(conn, site)
            finally:
                conn.close()
        rejoining = pair.model_copy(update={"standby_state": "replica"})
        rejoining.save(pair_block_name(site), overwrite=True)
        from flows.standby import refresh_firewalls

        refresh_firewalls(rejoining, site_block(site))
        for change in setup_replication(rejoining, log=log.info):
            clock.mark(change)
        pair = rejoining
        for change in traffic_for(pair).apply(pair):
            clock.mark(f"traffic: {change}")
    from flows.standby import wait_replicating

    status = wait_replicating(pair)
    clock.mark(status.line())
    result = {"site": site, "primary": pair.primary.address, "standby": pair.standby.address,
              "diverged_transactions": diverged, "replicating": status.replicating, "steps": clock.steps}
    if switch:
        if not status.replicating or status.transactions_behind:
            raise FailoverRefused(f"{site}: the rejoined standby is not caught up ({status.line()}): not switching")
        result["switch"] = failover(site=site)
        # The server that was primary until now is healthy: it rejoins at once as the standby.
        rejoined = failback(site=site)
        result["switch"]["standby_replicating"] = rejoined["replicating"]
    return result
