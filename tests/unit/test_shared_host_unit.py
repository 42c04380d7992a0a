"""Sites on a shared host: which sites host-wide files are rendered from, pools sized together, each site's
logs rotated. Pure functions (pressfleet.plan.hostsites, desired, sizing, render)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pressfleet.fleet.siteconfig import SiteConfig, WpSalts
from pressfleet.plan import desired
from pressfleet.plan.hostsites import (
    HostInventory,
    HostSites,
    host_sites,
    parse_inventory,
    resize_notes,
    site_record,
)
from pressfleet.plan.sizing import GiB, MiB, plan_host
from pressfleet.render.configs import render_fail2ban_jails, render_php_logrotate

pytestmark = pytest.mark.unit

SALTS = WpSalts.generate()


def site(name: str, **kw) -> SiteConfig:
    return SiteConfig(name=name, domain=f"{name.replace('_', 'x')}.lab.test", admin_email="a@lab.test",
                      tls_mode="self-signed", **kw)


def files(current: SiteConfig, host: HostSites | None, sites: int = 1):
    plan = plan_host(4 * GiB, worker_rss_bytes=48 * MiB, cpus=2, sites=sites)
    out = desired.desired_files(current, plan, ssh_port=22, ssh_groups=["pressfleet-ssh"], control_networks=[], db_password="x" * 40,
                                salts=SALTS, host=host)
    return {f.path: f.content.decode() for fs in out.values() for f in fs}, plan


def test_second_site_keeps_the_first_sites_jails_and_pools():
    one, two = site("one"), site("two")
    host = host_sites(two, [one], parse_inventory("pool one 8\nprocess_max 8\n"))
    rendered, plan = files(two, host, sites=host.count)
    jail = rendered["/etc/fail2ban/jail.local"]
    assert "/var/log/nginx/one.access.log" in jail and "/var/log/nginx/two.access.log" in jail
    assert one.php_pool_path in rendered and two.php_pool_path in rendered
    for s in (one, two):
        assert f"pm.max_children = {plan.php.max_children}" in rendered[s.php_pool_path]
    assert f"process.max = {2 * plan.php.max_children}" in rendered["/etc/php/8.2/fpm/pool.d/00-pressfleet-global.conf"]
    rot = rendered[desired.LOGROTATE_SITES]
    assert "su one one" in rot and "su two two" in rot
    assert rendered["/etc/pressfleet/sites/one.json"] == site_record(one).decode()
    assert desired.watched_logs(two, host) == [
        "/var/log/nginx/one.access.log", "/var/log/nginx/one.error.log",
        "/var/log/nginx/two.access.log", "/var/log/nginx/two.error.log"]


def test_unsaved_site_on_the_host_is_protected_and_noted():
    lone, cur = site("lone", allow_xmlrpc=True), site("cur")
    text = f"pool lone 4\npool legacy 4\nrecord lone {site_record(lone).decode().strip()}\n"
    host = host_sites(cur, [], parse_inventory(text))
    assert [s.name for s in host.sites] == ["cur", "lone"]
    assert host.sites[1] == lone
    assert host.pool_only == ("legacy",)
    assert host.count == 3
    assert any("lone" in n and "no saved block" in n for n in host.notes)
    assert any("legacy" in n for n in host.notes)
    jail = render_fail2ban_jails(host.sites, other_sites=host.pool_only)
    login = jail.split("[pressfleet-wordpress-login]")[1].split("[pressfleet-wordpress-xmlrpc]")[0]
    xmlrpc = jail.split("[pressfleet-wordpress-xmlrpc]")[1]
    for n in ("cur", "lone", "legacy"):
        assert f"/var/log/nginx/{n}.access.log" in login
    assert "lone.access.log" not in xmlrpc and "legacy.access.log" in xmlrpc  # lone allows XML-RPC


def test_saved_block_not_on_the_host_is_not_rendered():
    host = host_sites(site("cur"), [site("later")], HostInventory())
    assert [s.name for s in host.sites] == ["cur"]
    assert any("later" in n and "not on it yet" in n for n in host.notes)


def test_saved_block_wins_over_the_record_and_current_over_both():
    cur_saved, cur = site("cur", page_cache=False), site("cur")
    other_saved, other_record = site("other", allow_xmlrpc=True), site("other")
    inv = parse_inventory(f"pool cur 2\npool other 2\nrecord other {site_record(other_record).decode()}")
    host = host_sites(cur, [cur_saved, other_saved], inv)
    assert host.sites == (cur, other_saved)
    assert host.notes == ()


def test_inventory_ignores_hostile_names_and_bad_records():
    inv = parse_inventory("pool www 5\npool 00-pressfleet-global \nprocess_max 12\npool ../x 3\n"
                          "record two {not json\nrecord three {\"name\": \"four\"}\npool Bad 1\n")
    assert inv.pools == {} and inv.records == {} and inv.process_max == 12
    assert len(inv.notes) == 4


def test_resize_notes_say_what_changed():
    assert resize_notes({"one": 6}, {"one": 3, "two": 3}, 6, 6) == [
        "re-sized pools: one 6 -> 3 workers, two new (3 workers)"]
    assert resize_notes({"one": 3, "two": 3}, {"one": 3, "two": 3}, 6, 6) == []
    assert resize_notes({"one": 8}, {"one": 4, "two": 4}, 8, 8)[0].startswith("re-sized pools: one 8 -> 4")
    assert resize_notes({}, {"a": 2}, None, 2) == ["re-sized pools: a new (2 workers)",
                                                    "process.max (none) -> 2 (sum over 1 pool)"]


def _allowed(name: str) -> bool:
    """A name the site-name check accepts (not a system account such as `lp`, no reserved prefix or suffix)."""
    from pressfleet.validate import InvalidInput, site_name

    try:
        site_name(name)
    except (InvalidInput, ValueError):
        return False
    return True


NAME = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True).filter(_allowed)
NAMES = st.lists(NAME, max_size=6, unique=True)


@settings(max_examples=150, deadline=None)
@given(saved=NAMES, pools=NAMES, records=NAMES, current=st.from_regex(r"[a-z][a-z0-9]{0,8}", fullmatch=True).filter(_allowed))
def test_every_site_on_the_host_is_rendered_or_kept_and_nothing_else(saved, pools, records, current):
    inv = HostInventory(pools={p: 4 for p in pools}, records={r: site(r) for r in records})
    host = host_sites(site(current), [site(n) for n in saved], inv)
    rendered = [s.name for s in host.sites]
    on_host = set(pools) | set(records)
    # current always; every site on the host either rendered or kept by name; nothing off the host rendered
    assert current in rendered
    assert set(rendered) | set(host.pool_only) == on_host | {current}
    assert not set(rendered) & set(host.pool_only)
    assert rendered == sorted(rendered) and len(rendered) == len(set(rendered))
    # every site on the host without a saved block, and every saved block not on it, is noted by name
    for n in (on_host - set(saved) - {current}) | (set(saved) - on_host - {current}):
        assert any(f"site {n} " in note for note in host.notes), (n, host.notes)


@settings(max_examples=100, deadline=None)
@given(sites=st.integers(1, 12), ram=st.integers(1, 64), cpus=st.integers(1, 16))
def test_process_max_is_the_sum_of_the_pools_within_budget(sites, ram, cpus):
    try:
        plan = plan_host(ram * GiB, worker_rss_bytes=48 * MiB, cpus=cpus, sites=sites)
    except ValueError:
        return
    php = plan.php
    assert php.process_max <= php.budget_bytes // php.worker_cost_bytes + 1
    if php.max_children * sites <= php.budget_bytes // php.worker_cost_bytes:
        assert php.process_max == php.max_children * sites


def test_logrotate_uses_su_for_every_site_error_log():
    text = render_php_logrotate([site("b"), site("a")])
    assert text.index("/var/www/a/log/php-error.log") < text.index("/var/www/b/log/php-error.log")
    for n in ("a", "b"):
        stanza = text.split(f"/var/www/{n}/log/php-error.log {{")[1].split("}")[0]
        assert f"su {n} {n}" in stanza and f"create 0640 {n} {n}" in stanza
        assert f"/var/log/php8.2-fpm-{n}.slow.log {{" in text


HOST_WIDE = ("/etc/fail2ban/jail.local", "/etc/php/8.2/fpm/pool.d/00-pressfleet-global.conf", desired.LOGROTATE_SITES,
             "/etc/nginx/conf.d/pressfleet.conf", "/etc/nftables.conf", "/etc/php/8.2/fpm/conf.d/90-pressfleet.ini")


def test_host_wide_files_do_not_depend_on_which_site_is_provisioned():
    one, two, three = site("one"), site("two", allow_xmlrpc=True), site("three")
    inv = parse_inventory("pool one 4\npool two 4\npool three 4\n")
    rendered = [files(cur, host_sites(cur, [one, two, three], inv), sites=3)[0] for cur in (one, two, three)]
    for path in HOST_WIDE:
        assert rendered[0][path] == rendered[1][path] == rendered[2][path], path
    for s in (one, two, three):  # every pool is rendered by every run, the same way
        assert rendered[0][s.php_pool_path] == rendered[1][s.php_pool_path] == rendered[2][s.php_pool_path]
