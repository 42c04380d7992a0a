"""Site identity through the real `pressfleet` command (issue 9 item 6), against the in-process Prefect API.

No lab host: `provision --check` checks everything a real run checks before it touches a server (the Server
block is loaded, the site validated, the name claimed) and stops there; a refusal changes no block.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

SERVER = "hb-web-prod"


def _key_text() -> str:
    return ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()).decode()


@pytest.fixture(scope="module")
def cli(prefect_harness, tmp_path_factory):
    """Run `python -m pressfleet.cli.main ARGS` against the test API; blocks a test needs are saved here."""
    from prefect.settings import PREFECT_API_URL

    from blocks.server import Server
    from blocks.site import WordPressSite
    from blocks.storage import LocalStorage

    # 203.0.113.0/24 is TEST-NET-3: nothing answers there, and nothing here connects to it.
    Server(address="203.0.113.10", private_key=_key_text()).save(SERVER, overwrite=True)
    folder = tmp_path_factory.mktemp("hb-backups")
    store = LocalStorage(path=str(folder))
    if "encryption" in LocalStorage.model_fields:  # plaintext on purpose: these tests store no backup
        store.encryption = "none"
    store.save("hb-store", overwrite=True)
    # What an earlier pressfleet saved for shop.example.com (a short name), and one saved by this one.
    for name, domain, block in (("shop", "shop.example.com", "site-shop"),
                                ("shop_a_test", "shop.a.test", "site-shop-a-test")):
        WordPressSite(name=name, domain=domain, admin_email=f"admin@{domain}", tls_mode="self-signed").save(
            block, overwrite=True)
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "pressfleet.cli.main", *args], env=env, capture_output=True,
                              text=True, timeout=300, stdin=subprocess.DEVNULL)

    return run


def _block_domain(block: str) -> str | None:
    from blocks.site import WordPressSite

    try:
        return WordPressSite.load(block).domain
    except ValueError:
        return None


def test_the_readme_www_example_is_a_valid_site(cli):
    """README: `pressfleet provision web-prod --domain www.example.com` was refused ("'www' is reserved")."""
    res = cli("provision", SERVER, "--domain", "www.example.com", "--email", "ops@example.com", "--check")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "site 'example_com', block 'site-example-com'" in res.stdout and "203.0.113.10" in res.stdout
    assert _block_domain("site-example-com") is None  # a check saves nothing


def test_two_domains_with_the_same_first_label_are_two_sites(cli):
    res = cli("provision", SERVER, "--domain", "shop.b.test", "--check")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "site 'shop_b_test', block 'site-shop-b-test'" in res.stdout
    again = cli("provision", SERVER, "--domain", "shop.a.test", "--check")  # a saved domain keeps its site
    assert again.returncode == 0 and "site 'shop_a_test', block 'site-shop-a-test'" in again.stdout


def test_a_name_held_by_another_domain_is_refused_naming_the_holder(cli):
    res = cli("provision", SERVER, "--domain", "shop.b.test", "--name", "shop")
    assert res.returncode == 1
    [line] = res.stderr.strip().splitlines()
    assert line == ("pressfleet: refused before anything ran: the site name 'shop' is held by shop.example.com "
                    "(block 'site-shop'): choose another with --name.")
    assert _block_domain("site-shop") == "shop.example.com"  # not overwritten
    other = cli("provision", SERVER, "--domain", "shop.example.com", "--name", "shop_x")
    assert other.returncode == 1 and "shop.example.com is already site 'shop' (block 'site-shop')" in other.stderr


@pytest.mark.parametrize("typed, site", [("SHOP.example.com.", "shop"), ("www.shop.example.com", "shop"),
                                         ("shop", "shop"), ("site-shop", "shop"), ("shop.a.test", "shop_a_test")])
def test_a_domain_resolves_to_the_same_site_as_its_name(cli, typed, site):
    listed = cli("backups", typed, "--storage", "hb-store")
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert listed.stdout.splitlines()[0] == f"# Backups of {site}"


def test_backup_takes_a_domain_as_well_as_a_name(cli):
    by_domain = cli("backup", "shop.example.com", "--storage", "hb-store")
    by_name = cli("backup", "shop", "--storage", "hb-store")
    # The saved site names no server, so both runs stop at the same point, for the same site.
    assert by_domain.returncode == by_name.returncode == 1
    last = by_domain.stderr.strip().splitlines()[-1]
    assert last == by_name.stderr.strip().splitlines()[-1] and "'shop'" in last, last
    unknown = cli("backup", "nosuch.example.com", "--storage", "hb-store")
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == ("pressfleet: no saved WordPress site is 'nosuch.example.com' (as a domain, a "
                                      "site name or a block name).")
