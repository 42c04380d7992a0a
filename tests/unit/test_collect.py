"""Parsing the collection script's output (pressfleet.metrics.collect): pure, no host needed.

The outputs below are shaped exactly like templates/scripts/collect_metrics.sh prints them on a Debian 12
host (sections, then the raw text of /proc files, stub_status, SHOW GLOBAL STATUS, redis INFO...); one test
runs the real script on this machine and parses what it printed.
"""

from __future__ import annotations

import shutil
import subprocess
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pressfleet.render import configs as render
from pressfleet.metrics import collect as c
from pressfleet.metrics.store import MetricsStore

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=timezone.utc)
BLOG = c.SiteRef(name="blog", domain="blog.lab.test", cert_path="/etc/ssl/pressfleet/blog/fullchain.pem",
                 vhost_path="/etc/nginx/sites-enabled/blog.conf", db_name="blog",
                 error_log="/var/www/blog/log/php-error.log")
SHOP = c.SiteRef(name="shop", domain="shop.lab.test", cert_path="/etc/ssl/pressfleet/shop/fullchain.pem",
                 vhost_path="/etc/nginx/sites-enabled/shop.conf", db_name="shop")


def section(name: str, *lines: str) -> str:
    return f"\n@@pressfleet-metrics {name}@@\n" + "".join(line + "\n" for line in lines)


HOST_PART = (
    section("cpus", "2")
    + section("cpu1", "cpu  1000 0 500 8000 100 0 10 0 0 0")
    + section("loadavg", "0.42 0.30 0.20 1/126 10570")
    + section("meminfo", "MemTotal:        2000000 kB", "MemFree:          500000 kB", "MemAvailable:    1500000 kB",
              "Buffers:           10000 kB", "Cached:           600000 kB", "SwapTotal:        1000000 kB",
              "SwapFree:          750000 kB", "HugePages_Total:       0")
    + section("df", "overlay 100000000 25000000 75000000 /", "ext4 50000000 10000000 40000000 /srv/my data")
    + section("dfi", "overlay 6000000 60000 5940000 /", "ext4 0 0 0 /srv/my data")
    + section("netdev",
              "Inter-|   Receive                                                |  Transmit",
              " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed",
              "    lo:  999999    100    0    0    0     0          0         0   999999     100    0    0    0     0       0          0",
              "  host0: 123456    200    0    0    0     0          0         0    65432     150    0    0    0     0       0          0",
              "  eth1:    1000     10    0    0    0     0          0         0     2000      20    0    0    0     0       0          0")
)
NGINX_PART = section("nginx", "Active connections: 3 ", "server accepts handled requests",
                     " 120 120 4567 ", "Reading: 0 Writing: 1 Waiting: 2 ")
MARIADB_PART = (
    section("mariadb-status", "Aborted_clients\t0", "Innodb_buffer_pool_read_requests\t10000",
            "Innodb_buffer_pool_reads\t100", "Queries\t5000", "Slow_queries\t2", "Threads_connected\t4",
            "Uptime\t3600")
    + section("mariadb-sizes", "blog\t1048576", "information_schema\t0", "mysql\t2000000", "shop\t4096")
)
REDIS_PART = section("redis", "# Server", "redis_version:7.0.15", "uptime_in_seconds:7200", "# Memory",
                     "used_memory:1048576", "used_memory_human:1.00M", "# Stats", "keyspace_hits:900",
                     "keyspace_misses:100")
SITE_PART = (
    section("site blog", "http 200 0.012345", "cert notAfter=Dec 26 12:00:00 2026 GMT")
    + section("php blog", '{"pool":"blog","process manager":"dynamic","start time":1764150000,"accepted conn":12,'
              '"listen queue":0,"idle processes":1,"active processes":2,"total processes":3,'
              '"max active processes":2,"max children reached":1,"slow requests":5}')
)
END = section("cpu2", "cpu  1100 0 550 8300 100 0 10 0 0 0") + section("end")

FULL = HOST_PART + NGINX_PART + MARIADB_PART + REDIS_PART + SITE_PART + END
PLAIN = HOST_PART + END  # a pristine host: no nginx, MariaDB, Redis, no site


def test_a_full_host():
    m = c.parse_metrics(FULL, now=NOW, sites=[BLOG, SHOP])
    assert m.notes == [] and m.complete
    v = m.values()
    assert v == {
        "up": 1.0,
        "cpu_count": 2.0,
        # 450 jiffies passed, 300 of them idle
        "cpu_percent": 33.33,
        "load1": 0.42,
        "mem_total_bytes": 2000000 * 1024.0,
        "mem_used_bytes": 500000 * 1024.0,
        "swap_used_bytes": 250000 * 1024.0,
        "disk_used_bytes{mount=/}": 25000000.0,
        "disk_total_bytes{mount=/}": 100000000.0,
        "disk_used_bytes{mount=/srv/my data}": 10000000.0,
        "disk_total_bytes{mount=/srv/my data}": 50000000.0,
        # a filesystem without a fixed inode table (0 inodes) has no inode metrics
        "inodes_used{mount=/}": 60000.0,
        "inodes_total{mount=/}": 6000000.0,
        "net_rx_bytes": 124456.0,  # lo left out
        "net_tx_bytes": 67432.0,
        "nginx_active_connections": 3.0,
        "nginx_requests": 4567.0,
        "mariadb_threads_connected": 4.0,
        "mariadb_queries": 5000.0,
        "mariadb_slow_queries": 2.0,
        "mariadb_buffer_pool_hit_ratio": 0.99,
        "redis_used_memory_bytes": 1048576.0,
        "redis_hit_ratio": 0.9,
        "http_status{site=blog.lab.test}": 200.0,
        "ttfb_seconds{site=blog.lab.test}": 0.012345,
        "tls_days_left{site=blog.lab.test}": 30.0,
        "php_active_processes": 2.0,
        "php_max_children_reached": 1.0,
        "php_slow_requests": 5.0,
        # shop is asked for but not on this host: nothing about it, not even its database's size
        "mariadb_db_bytes{site=blog.lab.test}": 1048576.0,
    }
    assert m.sites == ["blog.lab.test"]
    assert {s.name for s in m.samples} <= set(c.METRIC_NAMES)
    assert m.get("disk_used_bytes", mount="/") == 25000000.0
    assert m.get("http_status", site="blog.lab.test") == 200.0
    assert m.counters == {"mariadb.read_requests": 10000.0, "mariadb.reads": 100.0, "mariadb.uptime": 3600.0,
                          "redis.hits": 900.0, "redis.misses": 100.0, "redis.uptime": 7200.0,
                          "php.max_children_reached.blog": 1.0, "time": NOW.timestamp()}


def test_a_host_without_nginx_mariadb_or_redis_has_just_no_such_metrics():
    m = c.parse_metrics(PLAIN, now=NOW, sites=[BLOG])
    assert m.notes == [] and m.complete
    names = {s.name for s in m.samples}
    assert {"up", "cpu_percent", "load1", "mem_used_bytes", "disk_used_bytes", "net_rx_bytes"} <= names
    assert not names & {"nginx_requests", "nginx_active_connections", "mariadb_queries", "mariadb_db_bytes",
                        "redis_used_memory_bytes", "redis_hit_ratio", "http_status", "php_active_processes"}
    assert m.sites == [] and m.counters == {}


def test_services_installed_but_down_give_notes_not_errors():
    down = (HOST_PART + section("nginx") + section("mariadb-status") + section("mariadb-sizes")
            + section("redis", "Could not connect to Redis at 127.0.0.1:6379: Connection refused")
            + section("site blog", "http 000 0.000000") + section("php blog", "") + END)
    m = c.parse_metrics(down, now=NOW, sites=[BLOG])
    v = m.values()
    assert v["up"] == 1.0 and v["cpu_percent"] == 33.33
    assert v["http_status{site=blog.lab.test}"] == 0.0  # no HTTP answer at all
    assert "ttfb_seconds{site=blog.lab.test}" not in v
    assert not any(k.startswith(("nginx_", "mariadb_", "redis_", "php_")) for k in v)
    assert [n.split(":")[0] for n in m.notes] == ["nginx", "mariadb", "redis", "php blog"]


def test_hit_ratios_over_the_interval_since_the_previous_round():
    first = c.parse_metrics(FULL, now=NOW, sites=[BLOG])
    later = (FULL.replace("keyspace_hits:900", "keyspace_hits:1000").replace("keyspace_misses:100", "keyspace_misses:200")
             .replace("uptime_in_seconds:7200", "uptime_in_seconds:7500")
             .replace("read_requests\t10000", "read_requests\t11000").replace("pool_reads\t100", "pool_reads\t300")
             .replace("Uptime\t3600", "Uptime\t3900"))
    second = c.parse_metrics(later, now=NOW + timedelta(minutes=5), sites=[BLOG], previous=first.counters)
    # in the interval: 100 hits, 100 misses; 1000 logical reads, 200 from disk
    assert second.get("redis_hit_ratio") == 0.5
    assert second.get("mariadb_buffer_pool_hit_ratio") == 0.8
    # without the previous round: since the services started
    alone = c.parse_metrics(later, now=NOW + timedelta(minutes=5), sites=[BLOG])
    assert alone.get("redis_hit_ratio") == pytest.approx(1000 / 1200, abs=1e-6)
    assert alone.get("mariadb_buffer_pool_hit_ratio") == pytest.approx(1 - 300 / 11000, abs=1e-6)
    # a previous round too old (a gap in collection) is not used
    stale = c.parse_metrics(later, now=NOW + timedelta(hours=2), sites=[BLOG], previous=first.counters)
    assert stale.get("redis_hit_ratio") == alone.get("redis_hit_ratio")
    # nothing happened in the interval: the ratio since start rather than none
    idle = c.parse_metrics(FULL, now=NOW + timedelta(minutes=5), sites=[BLOG], previous=first.counters)
    assert idle.get("redis_hit_ratio") == 0.9


def test_counter_resets_use_the_values_since_the_restart():
    first = c.parse_metrics(FULL, now=NOW, sites=[BLOG])
    # Redis restarted: uptime went down, counters start again (hits 30, misses 10 since the restart)
    restarted = (FULL.replace("keyspace_hits:900", "keyspace_hits:30").replace("keyspace_misses:100", "keyspace_misses:10")
                 .replace("uptime_in_seconds:7200", "uptime_in_seconds:60"))
    m = c.parse_metrics(restarted, now=NOW + timedelta(minutes=5), sites=[BLOG], previous=first.counters)
    assert m.get("redis_hit_ratio") == 0.75  # never negative, never a mix of before and after
    # MariaDB restarted with the previous round's uptime unknown: a counter that went down says so
    prev = {k: v for k, v in first.counters.items() if k != "mariadb.uptime"}
    mdb = FULL.replace("read_requests\t10000", "read_requests\t500").replace("pool_reads\t100", "pool_reads\t50")
    m = c.parse_metrics(mdb, now=NOW + timedelta(minutes=5), sites=[BLOG], previous=prev)
    assert m.get("mariadb_buffer_pool_hit_ratio") == 0.9
    # the raw counters go into the store as they are: a reader sees the drop as a restart
    assert m.get("nginx_requests") == 4567.0
    assert c.hit_ratio(5, 5, prev_hits=10, prev_misses=2) == 0.5  # hits went down: since the restart
    assert c.hit_ratio(0, 0) is None


def test_cpu_percent():
    assert c.cpu_percent("cpu  100 0 100 800 0 0 0 0 0 0", "cpu  150 0 150 900 0 0 0 0 0 0") == 50.0
    assert c.cpu_percent("cpu  100 0 100 800 0 0 0 0 0 0", "cpu  100 0 100 800 0 0 0 0 0 0") is None
    assert c.cpu_percent("cpu  200 0 100 800 0 0 0 0 0 0", "cpu  100 0 100 800 0 0 0 0 0 0") is None  # went back
    # iowait counts as idle; guest (already inside user) is not counted twice
    assert c.cpu_percent("cpu  0 0 0 0 0 0 0 0 0 0", "cpu  10 0 0 80 10 0 0 0 10 0") == 10.0
    m = c.parse_metrics(HOST_PART + section("end"), now=NOW)
    assert m.get("cpu_percent") is None and m.get("load1") == 0.42  # no second sample: no CPU


def test_tls_days_left_and_expired_certificates():
    assert c.parse_enddate("notAfter=Feb  3 04:05:06 2027 GMT") == datetime(2027, 2, 3, 4, 5, 6, tzinfo=timezone.utc)
    expired = SITE_PART.replace("Dec 26 12:00:00 2026", "Nov 24 12:00:00 2026")
    m = c.parse_metrics(HOST_PART + expired + END, now=NOW, sites=[BLOG])
    assert m.get("tls_days_left", site="blog.lab.test") == -2.0
    with pytest.raises(ValueError):
        c.parse_enddate("notAfter=tomorrow")
    # an unreadable certificate line: no TLS metric and a note, the HTTP check still counts
    bad = SITE_PART.replace("notAfter=Dec 26 12:00:00 2026 GMT", "unable to load certificate")
    m = c.parse_metrics(HOST_PART + bad + END, now=NOW, sites=[BLOG])
    assert m.get("tls_days_left", site="blog.lab.test") is None
    assert m.get("http_status", site="blog.lab.test") == 200.0
    assert any(n.startswith("site blog") for n in m.notes)
    with pytest.raises(ValueError):
        c.parse_metrics(FULL, now=NOW.replace(tzinfo=None))


def test_php_pools_are_summed_over_the_host():
    shop_site = section("site shop", "http 301 0.002") + section(
        "php shop", '{"active processes":1,"max children reached":0,"slow requests":2}')
    m = c.parse_metrics(HOST_PART + SITE_PART + shop_site + END, now=NOW, sites=[BLOG, SHOP])
    assert m.get("php_active_processes") == 3.0 and m.get("php_slow_requests") == 7.0
    assert m.get("php_max_children_reached") == 1.0
    assert m.sites == ["blog.lab.test", "shop.lab.test"]
    # a site in the output that was not asked for is not reported
    m = c.parse_metrics(HOST_PART + SITE_PART + shop_site + END, now=NOW, sites=[BLOG])
    assert m.sites == ["blog.lab.test"] and m.get("php_slow_requests") == 5.0
    assert {n.split(":")[0] for n in m.notes} == {"site shop", "php shop"}


def test_garbage():
    for text in ("", "garbage\nmore garbage", "Permission denied (publickey).", "@@pressfleet-facts os-release@@"):
        with pytest.raises(c.CollectParseError):
            c.parse_metrics(text, now=NOW)
    with pytest.raises(c.CollectParseError):
        c.parse_metrics(None, now=NOW)  # type: ignore[arg-type]
    junk = (section("cpus", "many") + section("cpu1", "cpu x y z") + section("loadavg", "nan 1 2")
            + section("meminfo", "MemFree: lots") + section("df", "overlay big used free /")
            + section("netdev", "no interfaces here") + section("nginx", "<html>502 Bad Gateway</html>")
            + section("mariadb-status", "ERROR 2002 (HY000): Can't connect") + section("redis", "NOAUTH")
            + section("site blog", "http abc", "cert junk") + section("php blog", "{not json")
            + section("cpu2", "cpu 1 2") + section("end"))
    m = c.parse_metrics(junk, now=NOW, sites=[BLOG])
    assert m.values() == {"up": 1.0, "http_status{site=blog.lab.test}": 0.0}
    assert len(m.notes) >= 10


def test_cut_off_output_keeps_what_arrived():
    text = FULL[: FULL.index("@@pressfleet-metrics nginx@@")]
    m = c.parse_metrics(text, now=NOW, sites=[BLOG])
    assert not m.complete and "cut off" in m.notes[0]
    assert m.get("mem_total_bytes") == 2000000 * 1024.0 and m.get("cpu_percent") is None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["cpus", "cpu1", "cpu2", "loadavg", "meminfo", "df", "dfi", "netdev", "nginx",
                                 "mariadb-status", "mariadb-sizes", "redis", "site blog", "php blog", "end"]),
                min_size=1, max_size=12),
       st.lists(st.text(max_size=60), max_size=12))
def test_any_sectioned_output_parses_without_raising(names, bodies):
    text = "".join(section(n, *(bodies[i:i + 2] if bodies else [])) for i, n in enumerate(names))
    m = c.parse_metrics(text, now=NOW, sites=[BLOG])
    assert m.samples[0] == c.Sample("up", 1.0)
    assert {s.name for s in m.samples} <= set(c.METRIC_NAMES)


def test_command_quotes_nothing_itself_and_refuses_bad_ports():
    assert c.collect_command([BLOG]) == ["sh", "-s", "--", "8081", "blog", "blog.lab.test",
                                         "/etc/ssl/pressfleet/blog/fullchain.pem", "/etc/nginx/sites-enabled/blog.conf",
                                         "/var/www/blog/log/php-error.log"]
    assert c.collect_command([SHOP])[-1] == "-"  # no error log to read
    assert c.collect_command([], status_port=9000) == ["sh", "-s", "--", "9000"]
    for port in (0, 70000, True, "8081"):
        with pytest.raises(ValueError):
            c.collect_command([], status_port=port)  # type: ignore[arg-type]


def test_site_ref_from_the_site_block_config():
    from pressfleet.fleet.siteconfig import SiteConfig

    cfg = SiteConfig(name="blog", domain="blog.lab.test", admin_email="a@lab.test", tls_mode="self-signed")
    ref = c.SiteRef.from_config(cfg)
    assert ref == BLOG
    acme = c.SiteRef.from_config(cfg.model_copy(update={"tls_mode": "acme"}))
    assert acme.cert_path == "/etc/letsencrypt/live/blog.lab.test/fullchain.pem"


def test_script_and_provisioning_agree_on_the_status_endpoints():
    text = c.script_text()
    assert c.DEFAULT_STATUS_PORT == render.STATUS_PORT
    assert f"{render.NGINX_STATUS_PATH}\"" in text
    assert render.fpm_status_url_path("xyz").replace("xyz", "${site}") + "?json" in text
    assert render.render_nginx_http_conf().count(f"listen 127.0.0.1:{c.DEFAULT_STATUS_PORT};") == 1


def test_metric_names_match_the_analysis_list():
    names = pytest.importorskip("pressfleet.analysis.metric_names")
    collected = set(c.METRIC_NAMES)
    assert collected <= set(names.METRICS), collected - set(names.METRICS)
    assert c.COUNTERS == {m for m in collected if names.METRICS[m].kind == "counter"}
    site_scoped = {m for m in collected if names.METRICS[m].scope == "site"}
    full = c.parse_metrics(FULL, now=NOW, sites=[BLOG])
    assert {s.name for s in full.samples if s.site} <= site_scoped
    assert {s.name for s in full.samples if s.labels} == {m for m in collected if names.METRICS[m].scope == "mount"}


def test_the_real_script_runs_here_and_parses(tmp_path):
    if not shutil.which("sh") or not shutil.which("df"):
        pytest.skip("needs a POSIX shell and df")
    vhost = tmp_path / "blog.conf"
    vhost.write_text("")
    ref = c.SiteRef(name="blog", domain="blog.invalid", cert_path=str(tmp_path / "none.pem"), vhost_path=str(vhost),
                    db_name="blog")
    proc = subprocess.run(c.collect_command([ref, SHOP], status_port=9), input=c.script_text(), text=True,
                          capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    m = c.parse_metrics(proc.stdout, now=datetime.now(timezone.utc), sites=[ref, SHOP])
    assert m.complete
    meminfo = dict(line.split(":", 1) for line in open("/proc/meminfo"))
    assert m.get("mem_total_bytes") == int(meminfo["MemTotal"].split()[0]) * 1024
    assert 0 <= m.get("cpu_percent") <= 100
    assert m.get("disk_total_bytes", mount="/") > 0
    assert m.sites == ["blog.invalid"]  # the site whose vhost file exists, not shop
    assert m.get("http_status", site="blog.invalid") is not None  # 0 unless something answers on 127.0.0.1:443
    assert m.get("tls_days_left", site="blog.invalid") is None  # no certificate file


def test_a_round_stored_twice_is_stored_once(tmp_path):
    m = c.parse_metrics(FULL, now=NOW, sites=[BLOG])
    points = c.to_points("10.200.0.12", NOW, m.samples) + c.to_points("10.200.0.99", NOW, c.unreachable().samples)
    store = MetricsStore(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        assert store.write_points(points) == len(points) == len(m.samples) + 1
        assert store.write_points(points) == 0
        assert store.count() == len(points)
        assert store.read_series("disk_used_bytes", "10.200.0.12", labels={"mount": "/srv/my data"}).tolist() == [1e7]
        assert store.read_series("ttfb_seconds", "10.200.0.12", site="blog.lab.test").tolist() == [0.012345]
        assert store.read_series("up", "10.200.0.99").tolist() == [0.0]
    finally:
        store.close()


def test_a_networks_subsites_are_probed_each_under_its_own_address(tmp_path):
    from pressfleet.analysis.overview import SiteInput, belongs_to, with_subsites

    text = (HOST_PART + section("site blog", "http 200 0.01", "subsite blog.lab.test/alpha/ 200 0.020",
                                "subsite shop.example.test/ 503 0.5", "subsite x.lab.test/a/b/ 200 0.1",
                                "subsite BAD/ 200 0.1", "subsite blog.lab.test/beta/ 000 0") + END)
    m = c.parse_metrics(text, now=NOW, sites=[BLOG])
    status = {s.site: s.value for s in m.samples if s.name == "http_status"}
    assert status == {"blog.lab.test": 200.0, "blog.lab.test/alpha": 200.0, "shop.example.test": 503.0,
                      "blog.lab.test/beta": 0.0}  # a nested path or an upper-case name is not an address
    assert {s.site for s in m.samples if s.name == "ttfb_seconds"} == {"blog.lab.test", "blog.lab.test/alpha",
                                                                       "shop.example.test"}
    assert belongs_to("alpha.blog.lab.test", "blog.lab.test") and belongs_to("blog.lab.test/alpha", "blog.lab.test")
    assert not belongs_to("blog.lab.test", "blog.lab.test") and not belongs_to("xblog.lab.test", "blog.lab.test")
    assert belongs_to("shop.example.test", "blog.lab.test", ("shop.example.test",))
    store = MetricsStore(f"sqlite:///{tmp_path / 'm.db'}")
    store.write_points(c.to_points("web1", NOW, m.samples))
    rows = with_subsites(store, [SiteInput(site="blog", domain="blog.lab.test", server="web1", host="web1")],
                         {"blog": ("shop.example.test",)})
    assert [r.domain for r in rows] == ["blog.lab.test", "blog.lab.test/alpha", "blog.lab.test/beta",
                                        "shop.example.test"]
    assert with_subsites(store, rows[:1], {}) == rows[:1]  # a site that is not a network: its own row only
