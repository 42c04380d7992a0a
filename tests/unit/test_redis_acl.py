"""Redis ACL users per site, the pure parts: names, key patterns, rules, what ACL GETUSER says, rendered files."""

from __future__ import annotations

import fnmatch
import json
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pressfleet.fleet.secrets import SECRET_KINDS, SiteSecrets, secret_block_name
from pressfleet.fleet.siteconfig import SiteConfig, WpSalts, generate_secret
from pressfleet.plan.desired import desired_files, wp_config
from pressfleet.plan.sizing import GiB, plan_host
from pressfleet.render.configs import render_redis_conf
from pressfleet.ssh import redisacl
from pressfleet.ssh.redisacl import AclUser, acl_user, key_pattern, password_hash, site_rules, site_user_differences
from pressfleet.validate import InvalidInput, site_name

pytestmark = pytest.mark.unit

PASSWORD = "p" * 40
# What Redis 7.0.15 (Debian 12) answers to `redis-cli --json ACL GETUSER shop` after pressfleet's ACL SETUSER: its own
# order of commands, and the sanitize-payload flag `reset` sets.
GETUSER = {"flags": ["on", "sanitize-payload"], "passwords": [password_hash(PASSWORD)],
           "commands": "-@all +ping +del +setex +expire +decrby +exists +mget +get +select +ttl +set +unlink +incrby "
                       "+incr +decr",
           "keys": "~shop:*", "channels": "", "selectors": []}

names = st.from_regex(r"[a-z][a-z0-9_]{0,30}", fullmatch=True).filter(lambda n: _valid(n))


def _valid(name: str) -> bool:
    try:
        acl_user(name)
    except InvalidInput:
        return False
    return True


def _user(**changes) -> AclUser:
    return AclUser.parse(json.dumps({**GETUSER, **changes}))


def test_a_site_user_as_redis_reports_it_needs_no_change():
    assert site_user_differences(_user(), "shop", PASSWORD) == []


def test_each_difference_from_the_site_user_is_named():
    assert site_user_differences(None, "shop", PASSWORD) == ["no user"]
    assert site_user_differences(AclUser.parse("null"), "shop", PASSWORD) == ["no user"]
    assert site_user_differences(_user(), "shop", "q" * 40) == ["password"]
    assert site_user_differences(_user(flags=["off"]), "shop", PASSWORD) == ["not on with a password"]
    assert site_user_differences(_user(flags=["on", "nopass"], passwords=[]), "shop", PASSWORD) == [
        "not on with a password", "password"]
    assert site_user_differences(_user(keys="~*"), "shop", PASSWORD) == ["keys '~*'"]
    assert site_user_differences(_user(channels="&*"), "shop", PASSWORD) == ["channels '&*'"]
    assert site_user_differences(_user(commands=GETUSER["commands"] + " +flushdb"), "shop", PASSWORD) == ["commands"]
    assert site_user_differences(_user(commands="+@all"), "shop", PASSWORD) == ["commands"]
    assert site_user_differences(_user(passwords=[password_hash(PASSWORD), password_hash("x" * 40)]), "shop",
                                 PASSWORD) == ["password"]


def test_the_site_rules_give_its_own_keys_and_no_server_wide_command():
    rules = site_rules("shop")
    assert rules[:2] == ["reset", "on"] and "~shop:*" in rules and "resetchannels" in rules
    assert [r for r in rules if r.startswith("~")] == ["~shop:*"]
    assert rules.index("-@all") < min(i for i, r in enumerate(rules) if r.startswith("+"))
    granted = {r[1:] for r in rules if r.startswith("+")}
    assert {"get", "set", "del", "expire", "mget"} <= granted
    # SCAN and KEYS would list every site's key names; the rest act on the whole server
    assert not granted & {"scan", "keys", "flushall", "flushdb", "config", "acl", "debug", "module", "eval", "info",
                          "shutdown", "client", "monitor", "script", "function", "randomkey", "@all"}
    assert not any(r.startswith(("#", ">", "nopass", "&", "allkeys", "allcommands")) for r in rules)  # no password


@given(names, names)
def test_no_site_pattern_matches_another_sites_keys(a, b):
    key = f"{a}:1:options:alloptions"
    assert fnmatch.fnmatchcase(key, key_pattern(a))
    assert fnmatch.fnmatchcase(key, key_pattern(b)) == (a == b)


@pytest.mark.parametrize("bad", ["default", "pf_admin", "a:b", "a*", "shop;FLUSHALL", "", "Shop", "redis"])
def test_a_name_that_is_not_a_site_cannot_be_a_redis_user(bad):
    with pytest.raises(InvalidInput):
        acl_user(bad)


def test_default_cannot_be_a_site_name_at_all():
    with pytest.raises(InvalidInput):  # refused before any step runs, not only at the Redis step
        site_name("default")


def test_redis_keeps_only_the_hash():
    assert password_hash("secret") == "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"
    assert PASSWORD not in " ".join(site_rules("shop"))


def test_a_database_number_is_checked():
    for bad in (-1, 1024, "0", True, 1.5):
        with pytest.raises(InvalidInput):
            redisacl._database(bad)
    assert redisacl._database(3) == "3"


def test_the_site_secret_block_and_its_repr():
    assert "redis-password" in SECRET_KINDS
    assert secret_block_name("shop_a", "redis-password") == "pressfleet-shop-a-redis-password"
    s = SiteSecrets(db_password="d" * 40, admin_password="a" * 24, salts=WpSalts.generate(), redis_password=PASSWORD)
    assert PASSWORD not in repr(s)


@pytest.fixture
def site():
    return SiteConfig(name="shop", domain="shop.example.com", admin_email="a@example.com")


def test_wp_config_authenticates_as_the_sites_redis_user(site):
    salts = WpSalts.generate()
    text = wp_config(site, "d" * 40, salts, PASSWORD).decode()
    assert f"define( 'WP_REDIS_PASSWORD', [ 'shop', '{PASSWORD}' ] );" in text.splitlines()
    assert "define( 'WP_REDIS_PREFIX', 'shop:' );" in text.splitlines()
    assert "WP_REDIS_PASSWORD" not in wp_config(site, "d" * 40, salts).decode()
    with pytest.raises(InvalidInput):
        wp_config(site, "d" * 40, salts, "a" * 20 + "'];system('id');//")


def test_redis_conf_names_its_acl_file(site):
    plan = plan_host(4 * GiB)
    assert "aclfile" not in render_redis_conf(plan.redis)
    files = desired_files(site, plan, ssh_port=22, ssh_groups=["pressfleet-ssh"], control_networks=[], db_password=generate_secret(40),
                          salts=WpSalts.generate())
    (conf,) = files["redis"]
    assert f"\naclfile {redisacl.ACL_FILE}\n" in conf.content.decode()
    with pytest.raises(InvalidInput):
        render_redis_conf(plan.redis, aclfile="/etc/redis/../shadow")


def test_the_remote_script_parses_and_carries_no_password_in_its_arguments():
    subprocess.run(["sh", "-n", "-c", redisacl.SCRIPT], check=True)
    # passwords reach redis-cli on stdin (-x) or in its environment (REDISCLI_AUTH), never as -a/--pass
    assert "--pass" not in redisacl.SCRIPT and " -a " not in redisacl.SCRIPT
