"""Disaster recovery's pure parts: replication names and SQL, GTID arithmetic, the failover decision, HAProxy."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pressfleet.dr import haproxy
from pressfleet.dr import replication as rep
from pressfleet.dr.decide import Views, decide, lost_writes
from pressfleet.validate import InvalidInput

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=timezone.utc)
gtid = st.builds(lambda d, s, n: (d, s, n), st.integers(0, 2**32 - 1), st.integers(1, 2**32 - 1),
                 st.integers(0, 2**63 - 1))


def _decide(views, **kw):
    args = dict(automatic=True, force=False, max_behind=0, last_failover=None, cooldown=timedelta(hours=1), now=NOW)
    args.update(kw)
    return decide(views, **args)


def test_server_ids_are_distinct_per_address_and_never_the_default():
    ids = {rep.server_id(f"10.200.0.{i}") for i in range(1, 255)}
    assert len(ids) == 254 and 1 not in ids and 0 not in ids
    assert rep.server_id("db1.example.com") == rep.server_id("db1.example.com") != rep.server_id("db2.example.com")
    with pytest.raises(InvalidInput):
        rep.server_id("10.0.0.1; DROP")


@given(st.lists(gtid, max_size=6, unique_by=lambda g: g[0]))
def test_gtid_lists_round_trip(entries):
    text = ",".join(f"{d}-{s}-{n}" for d, s, n in entries)
    parsed = rep.parse_gtid_list(text)
    assert rep.parse_gtid_list(rep.format_gtid_list(parsed)) == parsed
    assert parsed == {d: (s, n) for d, s, n in entries}


@given(st.text(max_size=30))
def test_anything_but_a_gtid_list_is_refused(text):
    try:
        rep.parse_gtid_list(text)
    except InvalidInput:
        return
    assert all(p.strip() == "" or p.strip().count("-") == 2 for p in text.replace("\n", "").split(","))


def test_seeding_merges_only_the_primarys_domain():
    current = "0-1-500,7-7-30,9-9-4"
    assert rep.merged_slave_pos(current, "0-1-20,9-9-12", domain=9) == "0-1-500,7-7-30,9-9-12"
    assert rep.merged_slave_pos(current, "0-1-20", domain=9) == "0-1-500,7-7-30"  # no write of its own yet
    assert rep.gtid_distance("9-9-40,0-1-3", "9-9-35", 9) == 5
    assert rep.gtid_distance("9-9-40", "9-9-41", 9) == 0


def test_the_dump_header_gives_the_snapshot_position():
    head = "-- MariaDB dump\n-- CHANGE MASTER TO MASTER_LOG_FILE='mariadb-bin.000002', MASTER_LOG_POS=342;\n" \
           "-- SET GLOBAL gtid_slave_pos='0-1-12,180879381-180879381-7';\n"
    assert rep.snapshot_position(head) == "0-1-12,180879381-180879381-7"
    with pytest.raises(InvalidInput, match="no GTID position"):
        rep.snapshot_position("-- no position here\n")
    # A server that was a replica itself: the header says the position comes later, the dump's end has it.
    former_replica = ("-- CHANGE MASTER TO MASTER_USE_GTID=slave_pos;\n-- ... the slave gtid state is printed later"
                      " in the file.\nINSERT INTO t VALUES (1);\n-- SET GLOBAL gtid_slave_pos='0-1-196,9-9-301';\n")
    assert rep.snapshot_position(former_replica) == "0-1-196,9-9-301"


def test_replication_sql_quotes_and_validates_everything():
    grant = rep.primary_grant_sql("blog", "10.200.0.22", "a" * 20 + "_-.")
    assert "'pfrepl_blog'@'10.200.0.22'" in grant and "REQUIRE SSL" in grant and "sql_log_bin = 0" in grant
    change = rep.change_master_sql("blog", "10.200.0.21", "p" * 24, primary_domain=5, slave_pos="5-5-3",
                                   ca_path="/etc/mysql/pressfleet-tls/peer-10.200.0.21.crt")
    assert "MASTER_SSL_VERIFY_SERVER_CERT = 1" in change and "DO_DOMAIN_IDS = (5)" in change
    assert "SET GLOBAL replicate_do_db = 'blog'" in change
    for bad in ("it's", "x" * 15):
        with pytest.raises(InvalidInput):
            rep.primary_grant_sql("blog", "10.200.0.22", bad)
    with pytest.raises(InvalidInput):
        rep.change_master_sql("Blog-1", "10.200.0.21", "p" * 24, primary_domain=5, slave_pos="", ca_path="/x")
    with pytest.raises(InvalidInput):
        rep.change_master_sql("blog", "10.200.0.21", "p" * 24, primary_domain=5, slave_pos="5-5-3'--", ca_path="/x")


def test_read_only_is_per_site_and_keeps_select():
    ro = rep.site_read_only_sql("blog")
    assert "REVOKE INSERT, UPDATE, DELETE" in ro and "SELECT" not in ro.split("REVOKE")[1].split("ON")[0]
    assert "read_only" not in ro.lower().replace("site_read_only", "")


def test_slave_status_parses_running_and_broken():
    running = ("*** 1. row ***\n Slave_IO_Running: Yes\n Slave_SQL_Running: Yes\n Seconds_Behind_Master: 0\n"
               " Gtid_IO_Pos: 5-5-9\n Last_IO_Error: \n Last_SQL_Error: \n")
    s = rep.parse_slave_status(running)
    assert s.replicating and s.seconds_behind == 0 and s.gtid_io_pos == "5-5-9"
    broken = rep.parse_slave_status(" Slave_IO_Running: Connecting\n Slave_SQL_Running: Yes\n"
                                    " Seconds_Behind_Master: NULL\n Last_IO_Error: error reconnecting\n")
    assert not broken.replicating and broken.seconds_behind is None and "reconnecting" in broken.last_error
    assert rep.parse_slave_status("") is None


def test_an_automatic_failover_needs_every_view_down():
    assert _decide(Views(control=False, front=False, standby=False)).go
    assert _decide(Views(control=False, front=None, standby=False)).go  # DNS traffic: the standby's view counts
    partition = _decide(Views(control=False, front=True, standby=True))
    assert not partition.go and "partition" in partition.reason
    alone = _decide(Views(control=False, front=None, standby=None))
    assert not alone.go and "control side may be the one cut off" in alone.reason
    assert not _decide(Views(control=True, front=False, standby=False)).go


@given(st.sampled_from([True, False, None]), st.sampled_from([True, False, None]), st.sampled_from([True, False, None]))
def test_never_a_failover_while_any_view_reaches_the_primary(control, front, standby):
    d = _decide(Views(control=control, front=front, standby=standby))
    if d.go:
        assert control is False and True not in (front, standby) and (front, standby) != (None, None)


def test_cool_down_lag_and_force():
    recent = NOW - timedelta(minutes=10)
    d = _decide(Views(control=False, front=False, standby=False), last_failover=recent)
    assert not d.go and "cool-down" in d.reason
    assert _decide(Views(control=False, front=False, standby=False), last_failover=NOW - timedelta(hours=2)).go
    person = _decide(Views(control=True, front=True, standby=True), automatic=False)
    assert person.go  # a planned switch
    behind = _decide(Views(control=True, front=True, standby=True, behind_transactions=12), automatic=False)
    assert not behind.go and "12 transaction(s) behind" in behind.reason and "--force" in behind.reason
    forced = _decide(Views(control=True, front=True, standby=True, behind_transactions=12), automatic=False, force=True)
    assert forced.go and "12 transaction(s) behind: they are lost" in forced.notes[0]
    sick = _decide(Views(control=False, front=False, standby=False, standby_healthy=False))
    assert not sick.go and "standby does not answer" in sick.reason
    unknown = _decide(Views(control=True, front=True, standby=True, behind_transactions=None), automatic=False)
    assert not unknown.go and "could not be measured" in unknown.reason
    assert _decide(Views(control=True, front=True, standby=True, behind_transactions=None), automatic=False,
                   force=True).go
    assert lost_writes([1, 2, 3, 4], {1, 2, 4}) == [3]


def test_haproxy_sends_traffic_only_to_the_primary_and_checks_both():
    text = haproxy.render([haproxy.FrontSite("blog", "blog.example.com", (
        haproxy.FrontServer("10.0.0.1", "fenced"), haproxy.FrontServer("10.0.0.2", "primary")))])
    assert "use_backend tls_blog if { req_ssl_sni -i blog.example.com }" in text
    assert "server s_10_0_0_2 10.0.0.2:443 check port 443 check-ssl verify none check-sni blog.example.com weight 100" in text
    assert "server s_10_0_0_1 10.0.0.1:443 check port 443 check-ssl verify none check-sni blog.example.com weight 0 disabled" in text
    assert "uri /?pressfleet_health=1" in text
    with pytest.raises(InvalidInput):
        haproxy.FrontSite("blog", "blog.example.com; x", ())
    with pytest.raises(InvalidInput, match="more than one primary"):
        haproxy.FrontSite("blog", "blog.example.com", (haproxy.FrontServer("10.0.0.1", "primary"),
                                                       haproxy.FrontServer("10.0.0.2", "primary")))
    assert haproxy.render([]) == haproxy.render([])


def test_haproxy_stat_parsing():
    csv = ("# pxname,svname,qcur,status\nhttps_in,FRONTEND,0,OPEN\ntls_blog,s_10_0_0_1,0,UP\n"
           "tls_blog,s_10_0_0_2,0,DOWN 1/2\ntls_blog,BACKEND,0,UP\n")
    assert haproxy.parse_stat(csv) == {("tls_blog", "s_10_0_0_1"): "UP", ("tls_blog", "s_10_0_0_2"): "DOWN 1/2"}


def test_the_replication_settings_name_each_standby_connection():
    text = rep.render_replication_cnf("10.200.0.22", replicas=[rep.ReplicaConnection("blog", "10.200.0.21", 9)],
                                      semisync=True)
    assert f"server_id = {rep.server_id('10.200.0.22')}" in text and "blog.replicate_do_db = blog" in text
    assert "bind-address = 127.0.0.1,10.200.0.22" in text and "rpl_semi_sync_master_wait_point = AFTER_SYNC" in text
    with pytest.raises(ValueError):
        rep.render_replication_cnf("db.example.com", replicas=[], semisync=False)  # MariaDB binds addresses
