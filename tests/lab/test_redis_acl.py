"""Redis between the sites of one host (issue 10): each site's own ACL user, nothing of another site's.

On the session's shared host (two sites provisioned by the real flow): site one's credentials can neither read nor
write site two's keys, nor flush, scan, list or reconfigure anything; `default` lets nobody in; the restore's flush
leaves site two's keys; WordPress's object cache works through pressfleet's drop-in as the site's user; the users
survive a Redis restart, and a second run changes nothing.
"""

from __future__ import annotations

import json

import pytest

from pressfleet.backup.restore import flush_caches
from pressfleet.fleet.secrets import site_secrets
from pressfleet.ssh import redisacl
from pressfleet.ssh.remote import run
from tasks.redis import ensure_site_user
from tests.conftest import connect_lab

pytestmark = pytest.mark.lab


def redis_as(conn, user: str, password: str):
    """A function running one Redis command as USER (the password on stdin, into redis-cli's environment, never
    argv, nor in a failed assertion's message): it returns Redis's answer."""
    def says(*command: str) -> str:
        return run(conn, ["sh", "-c", 'u=$1; shift; REDISCLI_AUTH=$(cat) exec redis-cli --no-auth-warning --user "$u" "$@" 2>&1',
                          "sh", user, *command], stdin=password, check=False).stdout.strip()
    return says


def refused(answer: str) -> bool:
    """NOPERM, or DEBUG's own refusal (off in the server: `enable-debug-command no`, checked before the ACL)."""
    return answer.startswith("NOPERM") or answer.startswith("ERR DEBUG command not allowed")


# Loads WordPress as the site's user: sets a value through the drop-in, reads it back through a fresh cache object
# (a new Redis connection: so from Redis, not this request's memory), flushes, reads again.
CACHE_PROBE = r"""<?php
$_SERVER['HTTP_HOST'] = $argv[2]; $_SERVER['REQUEST_URI'] = '/'; $_SERVER['HTTPS'] = 'on';
define('WP_USE_THEMES', false);
require $argv[1] . '/wp-load.php';
$out = ['connected' => $GLOBALS['wp_object_cache']->redis_connected];
$out['set'] = wp_cache_set('pf_probe', 'stored in redis', 'pf_probe_group');
$GLOBALS['wp_object_cache'] = new WP_Object_Cache();
$out['read_back'] = wp_cache_get('pf_probe', 'pf_probe_group');
$out['flushed'] = wp_cache_flush();
$GLOBALS['wp_object_cache'] = new WP_Object_Cache();
$out['after_flush'] = wp_cache_get('pf_probe', 'pf_probe_group');
echo json_encode($out), "\n";
"""


def test_each_site_reaches_only_its_own_redis_keys(shared_host):
    conn = connect_lab(shared_host.host)
    one, two = shared_host.one.config, shared_host.two.config
    pw_one, pw_two = site_secrets(one.name).redis_password, site_secrets(two.name).redis_password
    one_says, two_says = redis_as(conn, one.name, pw_one), redis_as(conn, two.name, pw_two)
    for site in (shared_host.one, shared_host.two):
        site.curl("/?cache-bypass=acl")

    # WordPress stored its object cache as each site's user, under the site's prefix (default is off: see below)
    assert redisacl.count_site_keys(conn, one.name) > 10
    assert redisacl.count_site_keys(conn, two.name) > 10
    authenticates = f"define( 'WP_REDIS_PASSWORD', [ '{one.name}', '{pw_one}' ] );" in run(conn, ["cat", one.wp_config_path]).stdout
    assert authenticates  # (a bare flag: a failed assertion never prints the file's secrets)

    # site two writes a key of its own; site one's credentials get nowhere near it
    assert two_says("SET", f"{two.name}:pf_secret", "two's data") == "OK"
    assert one_says("SET", f"{one.name}:pf_mine", "one's data") == "OK"
    assert one_says("GET", f"{one.name}:pf_mine") == "one's data"
    for command in (["GET", f"{two.name}:pf_secret"], ["MGET", f"{one.name}:pf_mine", f"{two.name}:pf_secret"],
                    ["SET", f"{two.name}:pf_secret", "overwritten"], ["DEL", f"{two.name}:pf_secret"],
                    ["EXPIRE", f"{two.name}:pf_secret", "1"], ["SET", "unprefixed", "x"]):
        assert refused(one_says(*command)), command
    for command in (["FLUSHALL"], ["FLUSHDB"], ["KEYS", "*"], ["SCAN", "0"], ["ACL", "LIST"], ["DEBUG", "SLEEP", "0"],
                    ["MODULE", "LIST"], ["INFO"], ["EVAL", "return 1", "0"], ["SHUTDOWN"], ["CLIENT", "LIST"]):
        assert refused(one_says(*command)), command
    assert "WRONGPASS" in redis_as(conn, one.name, pw_two)("PING")  # another site's password is no key
    no_auth = 'redis-cli GET "$1" 2>&1'  # as `default`: off
    assert "NOAUTH" in run(conn, ["sh", "-c", no_auth, "sh", f"{two.name}:pf_secret"], check=False).stdout
    assert "NOAUTH" in run(conn, ["runuser", "-u", one.user, "--", "sh", "-c", no_auth, "sh", "x"], check=False).stdout
    assert two_says("GET", f"{two.name}:pf_secret") == "two's data"

    # pressfleet's admin password is root's alone on the host
    assert run(conn, ["stat", "-c", "%a %U", redisacl.ADMIN_SECRET]).stdout.split() == ["600", "root"]
    assert not run(conn, ["runuser", "-u", one.user, "--", "cat", redisacl.ADMIN_SECRET], check=False).ok
    assert run(conn, ["stat", "-c", "%a", redisacl.ACL_FILE]).stdout.strip() in ("640", "660")

    # a restore's cache flush (restore.flush_caches) takes site one's keys only
    two_keys = redisacl.count_site_keys(conn, two.name)
    flush_caches(conn, one)
    assert redisacl.count_site_keys(conn, one.name) == 0
    assert redisacl.count_site_keys(conn, two.name) == two_keys
    assert two_says("GET", f"{two.name}:pf_secret") == "two's data"

    # the object cache works through the drop-in as the site's user, and its own flush
    run(conn, ["sh", "-c", 'cat > /tmp/pf-cache-probe.php && chmod 644 /tmp/pf-cache-probe.php'], stdin=CACHE_PROBE)
    probe = run(conn, ["runuser", "-u", one.user, "--", "php", "/tmp/pf-cache-probe.php", one.web_root, one.domain])
    assert json.loads(probe.stdout.strip().splitlines()[-1]) == {
        "connected": True, "set": True, "read_back": "stored in redis", "flushed": True, "after_flush": False}
    assert redisacl.count_site_keys(conn, one.name) > 0

    # the users are saved: a restart keeps them, and a second run finds nothing to change
    before = redisacl.site_user(conn, one.name)
    run(conn, ["systemctl", "restart", "redis-server"])
    assert redisacl.site_user(conn, one.name) == before
    assert ensure_site_user(conn, one.name, pw_one) == [] and redisacl.ensure_admin(conn) == []
    assert one_says("SET", f"{one.name}:pf_after_restart", "x") == "OK"
    assert one_says("GET", f"{two.name}:pf_secret").startswith("NOPERM")
