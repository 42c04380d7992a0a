"""A site with a standby on a second lab host, behind HAProxy on a third: replication over TLS, the file sync,
a control-side partition that must not fail over, the primary's power cut under a write load (automatic
failover, every acknowledged write kept with semi-sync), the old primary back fenced, failback and switch back.

One scenario for the module (its tests run in order and build on each other): three hosts, one provisioning
of the site on each server, about three minutes in all.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pytest

from pressfleet.dr.load import WriteLoad
from tests.conftest import TEST_PREFIX, connect_lab, make_site

pytestmark = pytest.mark.lab

SITE, DOMAIN = "drsite", "dr.lab.test"


@dataclass
class DR:
    primary: object  # LabHost
    standby: object
    front: object
    servers: dict = field(default_factory=dict)  # LabHost name -> Server
    front_block: object = None
    add: dict = field(default_factory=dict)


def sql(host, text: str, db: str = SITE, *, names: bool = False) -> str:
    from pressfleet.ssh.remote import run

    with connect_lab(host) as conn:
        return run(conn, ["mariadb", "--batch", *([] if names else ["--skip-column-names"]), db],
                   stdin=text).stdout.strip()


def shell(host, script: str, *args: str, check: bool = True):
    from pressfleet.ssh.remote import run

    with connect_lab(host) as conn:
        return run(conn, ["sh", "-c", script, "sh", *args], check=check)


def through_front(dr: DR, path: str = "/?pressfleet_health=1") -> int | None:
    from pressfleet.dr.checks import site_answers

    return site_answers(DOMAIN, dr.front.address, path=path)


@pytest.fixture(scope="module")
def dr(lab_pool, prefect_harness) -> DR:
    from blocks.standby import Front
    from flows.provision_wordpress import provision_wordpress
    from flows.standby import standby_add
    from pressfleet.dr.traffic import install_front
    from pressfleet.fleet.sites import site_block_name
    from pressfleet.lab.blocks import server_for

    d = DR(lab_pool.fresh("dra", stack=True), lab_pool.fresh("drb", stack=True), lab_pool.fresh("drf"))
    for h in (d.primary, d.standby, d.front):
        d.servers[h.name] = server_for(h)
        d.servers[h.name].save(f"test-{h.name}", overwrite=True)
    site = make_site(name=SITE, domain=DOMAIN, title="pressfleet failover", server=d.servers[d.primary.name])
    site.save(site_block_name(SITE), overwrite=True)
    provision_wordpress(server=d.servers[d.primary.name], site=site)
    sql(d.primary, "CREATE TABLE IF NOT EXISTS dr_load (n INT PRIMARY KEY, at TIMESTAMP(6) DEFAULT "
                   "CURRENT_TIMESTAMP(6)) ENGINE=InnoDB; INSERT IGNORE INTO dr_load (n) VALUES (0);")
    d.front_block = Front(server=d.servers[d.front.name])
    install_front(d.front_block)
    d.front_block.save("test-dr-front", overwrite=True)
    d.add = standby_add(site=SITE, standby=d.servers[d.standby.name], semisync=True, traffic="front",
                        front=Front.load("test-dr-front"), failover_after_s=5, cooldown_minutes=60,
                        file_sync_interval_s=5)
    yield d
    for h in (d.primary, d.standby, d.front):  # the pool's hosts of this module: stopped now, not at the end
        lab_pool.stop(h.name.removeprefix(TEST_PREFIX))


def _pair():
    from blocks.standby import load_pair

    return load_pair(SITE)


def test_the_standby_replicates_over_tls_serves_nothing_and_its_files_follow(dr):
    from flows.standby import standby_status
    from pressfleet.dr.traffic import traffic_for

    assert dr.add["replicating"] and dr.add["transactions_behind"] == 0, dr.add
    sql(dr.primary, "INSERT INTO dr_load (n) VALUES (1);")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and sql(dr.standby, "SELECT COUNT(*) FROM dr_load WHERE n = 1;") != "1":
        time.sleep(0.2)
    assert sql(dr.standby, "SELECT COUNT(*) FROM dr_load WHERE n = 1;") == "1"
    # Over TLS, the primary's certificate checked; the replication user may connect only with TLS.
    status = sql(dr.standby, f"SHOW SLAVE '{SITE}' STATUS\\G", db="mysql", names=True)
    assert "Master_SSL_Allowed: Yes" in status and "Master_SSL_Verify_Server_Cert: Yes" in status, status
    assert sql(dr.primary, f"SELECT ssl_type FROM mysql.user WHERE User = 'pfrepl_{SITE}';", db="mysql") == "ANY"
    assert sql(dr.primary, "SHOW STATUS LIKE 'Rpl_semi_sync_master_clients';", db="mysql").split()[-1] == "1"
    # Serves nothing: its site user cannot write, HAProxy checks it but sends it no one.
    assert sql(dr.standby, f"SELECT Insert_priv FROM mysql.db WHERE User = '{SITE}' AND Db = '{SITE}';",
               db="mysql") == "N"
    view = traffic_for(_pair()).view(_pair())
    assert view == {dr.primary.address: True, dr.standby.address: True}, view
    assert through_front(dr) == 200
    # An upload follows; a link the site plants towards root's files is not followed or copied.
    uploads = f"/var/www/{SITE}/htdocs/wp-content/uploads"
    shell(dr.primary, f'setpriv --reuid={SITE} --regid={SITE} --clear-groups sh -c '
                      f'"echo drill-upload > {uploads}/dr-upload.txt; ln -sfn /etc/shadow {uploads}/dr-shadow"')
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not shell(dr.standby, f"test -f {uploads}/dr-upload.txt", check=False).ok:
        time.sleep(0.5)
    assert shell(dr.standby, f"cat {uploads}/dr-upload.txt").stdout.strip() == "drill-upload"
    assert not shell(dr.standby, f"test -e {uploads}/dr-shadow -o -L {uploads}/dr-shadow", check=False).ok
    # After file sync passes the standby's own WordPress still answers (root's files keep their group and ACLs).
    time.sleep(6)
    own = shell(dr.standby, "curl -ks -o /dev/null -w '%{http_code}' --resolve "
                            f"{DOMAIN}:443:127.0.0.1 'https://{DOMAIN}/?pressfleet_health=1'").stdout
    assert own == "200", own
    rows = standby_status(site=SITE)
    assert rows[0]["replicating"] and rows[0]["transactions_behind"] == 0 and rows[0]["file_sync_age_s"] < 30, rows


def test_bad_input_changes_nothing(dr):
    from blocks.standby import Front
    from flows.failover import FailoverRefused, failover
    from flows.standby import standby_add
    from pressfleet.validate import InvalidInput

    with pytest.raises(ValueError, match="on its primary's own server"):
        standby_add(site=SITE, standby=dr.servers[dr.primary.name], traffic="front", front=Front.load("test-dr-front"))
    with pytest.raises(InvalidInput, match="already has a standby"):
        standby_add(site=SITE, standby=dr.servers[dr.front.name], traffic="front", front=Front.load("test-dr-front"))
    with pytest.raises(InvalidInput, match="has no standby"):
        failover(site="nostandby")
    with pytest.raises(InvalidInput, match="is not a valid site name"):
        failover(site="dr; DROP DATABASE")
    with pytest.raises(InvalidInput, match="standby is"):
        failover(site=SITE, to="10.200.0.250")
    # Too far behind: the standby stops applying, the primary takes 5 writes; refused, and --force would lose them.
    sql(dr.standby, f"STOP SLAVE '{SITE}' SQL_THREAD;", db="mysql")
    try:
        sql(dr.primary, "INSERT INTO dr_load (n) VALUES (11),(12); INSERT INTO dr_load (n) VALUES (13);"
                        "INSERT INTO dr_load (n) VALUES (14); INSERT INTO dr_load (n) VALUES (15);"
                        "INSERT INTO dr_load (n) VALUES (16);")
        # At least those 5 (WordPress answering the front's health checks writes too: its own transactions count).
        with pytest.raises(FailoverRefused, match=r"is \d+ transaction\(s\) behind .*--force") as refused:
            failover(site=SITE)
        assert int(str(refused.value).split(" is ")[1].split()[0]) >= 5, str(refused.value)
    finally:
        sql(dr.standby, f"START SLAVE '{SITE}' SQL_THREAD;", db="mysql")
    pair = _pair()
    assert (pair.primary.address, pair.standby.address, pair.standby_state) == (
        dr.primary.address, dr.standby.address, "replica")


def test_a_partition_of_the_control_side_only_does_not_fail_over(dr):
    """The control side loses the primary (its packets are dropped at the primary), the front and the standby
    still reach it: the automatic failover watches, sees a partition, and does nothing."""
    from pressfleet.lab import hosts as lab
    from flows.dr_drill import isolation_rules
    from flows.failover import failover

    ns = lab._netns(dr.primary.name)
    control = str(lab.namespace().bridge_address)
    rules = isolation_rules("pf_partition", control)
    lab._run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=rules)
    try:
        result = failover(site=SITE, automatic=True)
    finally:
        lab._run(["ip", "netns", "exec", ns, "nft", "delete", "table", "inet", "pf_partition"])
    assert result["failed_over"] is False
    assert "partition" in result["reason"], result
    assert _pair().primary.address == dr.primary.address


def test_the_primary_cut_under_a_write_load_fails_over_automatically_and_keeps_every_acknowledged_write(dr):
    from flows.failover import failover
    from pressfleet.lab import hosts as lab

    with connect_lab(dr.primary) as conn:
        load = WriteLoad(conn, SITE, table="dr_load", first=1000).start()
        assert load.wait_for(200), load.error
        lab.crash(dr.primary.name)
        cut = time.monotonic()
        load.stop()
    acked = [n for n, _ in load.acked]
    result = failover(site=SITE, automatic=True)
    assert result["failed_over"], result
    rto = time.monotonic() - cut
    assert through_front(dr) == 200
    assert rto < 60, result["steps"]
    pair = _pair()
    assert (pair.primary.address, pair.standby.address, pair.standby_state) == (
        dr.standby.address, dr.primary.address, "fence-pending")
    present = set(map(int, sql(dr.standby, "SELECT n FROM dr_load;").split()))
    lost = [n for n in acked if n not in present]
    assert not lost, f"{len(lost)} acknowledged writes lost (semi-sync), first {lost[:5]}"
    # The new primary takes writes; the site block follows it.
    sql(dr.standby, "INSERT INTO dr_load (n) VALUES (2000000);")
    from blocks.site import WordPressSite
    from pressfleet.fleet.sites import site_block_name

    assert WordPressSite.load(site_block_name(SITE)).server.address == dr.standby.address
    dr.add["acked"] = acked
    dr.add["rto"] = rto


def test_the_old_primary_comes_back_fenced_and_out_of_traffic(dr):
    from pressfleet.dr.fencing import complete_fences
    from pressfleet.dr.traffic import traffic_for
    from pressfleet.lab import hosts as lab

    lab.boot(dr.primary.name, wait=90)
    done = complete_fences()
    assert any(SITE in d for d in done), done
    assert _pair().standby_state == "fenced"
    assert sql(dr.primary, f"SELECT Insert_priv FROM mysql.db WHERE User = '{SITE}' AND Db = '{SITE}';",
               db="mysql") == "N"
    # Its site user cannot write, even though its MariaDB is up; its file sync towards the new primary is off.
    refused = shell(dr.primary, f"mariadb --user={SITE} --password=\"$(sed -n \"s/.*'DB_PASSWORD', '\\([^']*\\)'.*/\\1/p\" "
                                f"/var/www/{SITE}/wp-config.php)\" {SITE} -e 'INSERT INTO dr_load (n) VALUES (3000000)'",
                    check=False)
    assert not refused.ok and "denied" in refused.stderr, refused.stderr
    assert shell(dr.primary, f"systemctl is-active pressfleet-filesync-{SITE}.timer", check=False).stdout.strip() != "active"
    view = traffic_for(_pair()).view(_pair())
    assert view[dr.standby.address] is True and view[dr.primary.address] is None, view  # MAINT: out of traffic
    # A second automatic failover so soon needs a person (the cool-down).
    from flows.failover import failover

    with pytest.raises(Exception, match="fenced"):
        failover(site=SITE, automatic=True)


def test_failback_rejoins_the_old_primary_and_switches_back_with_nothing_lost(dr):
    from flows.failover import failback, failover

    result = failback(site=SITE)
    assert result["replicating"], result
    pair = _pair()
    assert (pair.primary.address, pair.standby.address, pair.standby_state) == (
        dr.standby.address, dr.primary.address, "replica")
    assert sql(dr.primary, "SELECT COUNT(*) FROM dr_load WHERE n = 2000000;") == "1"
    # Within the cool-down an automatic failover is refused, whatever it sees.
    auto = failover(site=SITE, automatic=True)
    assert auto["failed_over"] is False and "cool-down" in auto["reason"], auto
    switched = failback(site=SITE, switch=True)
    assert switched["switch"]["primary"] == dr.primary.address
    assert through_front(dr) == 200
    present = set(map(int, sql(dr.primary, "SELECT n FROM dr_load;").split()))
    assert set(dr.add["acked"]) | {2000000} <= present
    sql(dr.primary, "INSERT INTO dr_load (n) VALUES (2000001);")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and sql(dr.standby, "SELECT COUNT(*) FROM dr_load WHERE n = 2000001;") != "1":
        time.sleep(0.2)
    assert sql(dr.standby, "SELECT COUNT(*) FROM dr_load WHERE n = 2000001;") == "1"


def test_a_drill_measures_rpo_and_rto_on_the_standby_and_collection_reports_replication(dr):
    """After the switch back: the dr-drill (standby cut off under a write load, promoted alone, re-seeded) and
    collect-metrics' replication findings, which feed the replication rules."""
    from datetime import datetime, timezone

    from flows.collect_metrics import replication_findings
    from flows.dr_drill import dr_drill

    [drill] = dr_drill(site=SITE, load_seconds=1.5)
    assert drill["ok"], drill
    assert drill["replication"] == "semi-sync" and drill["acked_before_cut"] > 20
    assert drill["rpo_writes"] == 0 and drill["promote_seconds"] is not None and drill["promote_seconds"] < 30
    assert drill["rto_seconds"] == pytest.approx(drill["promote_seconds"] + 5, abs=0.05)
    pair = _pair()
    assert (pair.primary.address, pair.standby_state) == (dr.primary.address, "replica")
    assert sql(dr.primary, "SHOW TABLES LIKE 'pressfleet_drill';") == ""  # the drill's table is gone
    assert sql(dr.standby, f"SELECT Insert_priv FROM mysql.db WHERE User = '{SITE}' AND Db = '{SITE}';",
               db="mysql") == "N"  # read-only again
    points, rows = replication_findings(datetime.now(timezone.utc))
    checks = {r[1]: r[2] for r in rows if r[0] == f"pressfleet.site.{SITE}"}
    assert checks["replication_ok"] == 1.0 and checks["replication_behind_transactions"] == 0, checks
    assert 0 <= checks["file_sync_age_seconds"] < 60
    assert {p["metric"] for p in points} >= {"replication_ok", "replication_lag_seconds", "file_sync_age_seconds"}
    assert all(p["site"] == DOMAIN and p["host"] == dr.standby.address for p in points)


def test_standby_remove_stops_replication_and_the_file_sync_and_forgets_the_pair(dr):
    from flows.standby import standby_remove
    from pressfleet.dr.traffic import traffic_for
    from pressfleet.fleet.saved import saved_block_names
    from pressfleet.validate import InvalidInput

    pair = _pair()
    result = standby_remove(site=SITE)
    assert any("replication connection" in c for c in result["changed"]), result
    from tasks.standby import replica_status

    with connect_lab(dr.standby) as conn:
        assert replica_status(conn, SITE) is None
    assert shell(dr.primary, f"test -e /etc/systemd/system/pressfleet-filesync-{SITE}.timer", check=False).exited == 1
    assert "pressfleet-filesync" not in shell(dr.standby, "cat /root/.ssh/authorized_keys").stdout
    assert sql(dr.primary, f"SELECT COUNT(*) FROM mysql.user WHERE User = 'pfrepl_{SITE}';", db="mysql") == "0"
    assert f"standby-{SITE}" not in saved_block_names("pressfleet-standby-pair")
    fenced = pair.model_copy(update={"standby_state": "fenced"})
    view = traffic_for(fenced).view(fenced)
    assert view[dr.primary.address] is True and view[dr.standby.address] is None  # the old standby: out (MAINT)
    assert through_front(dr) == 200
    with pytest.raises(InvalidInput, match="has no standby"):
        standby_remove(site=SITE)
