"""WordPress networks on a real lab host: a subdirectory and a subdomain network (wildcard certificate over
DNS-01), each with two subsites serving their own titles over HTTPS, certificates from pebble (a real ACME
server), a mapped domain with its own certificate, refusals that change nothing, and one subsite restored alone."""

from __future__ import annotations

import hashlib
import subprocess

import pytest

from pressfleet.ssh.remote import run
from tests.conftest import connect_lab, make_site

pytestmark = pytest.mark.lab

SUBSITES = {"alpha": "Alpha subsite", "beta": "Beta subsite"}
ELSEWHERE = "10.200.0.99"  # in the lab's network, but no host of this test


@pytest.fixture(scope="module")
def pebble(tmp_path_factory):
    from tests.acme import Pebble

    server = Pebble(tmp_path_factory.mktemp("pebble")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def networks(lab_pool, prefect_harness, pebble):
    """One stack host carrying both networks, provisioned by provision_wordpress, two subsites each added by
    network-add-site. Returns {"dir": ..., "sub": ...} with each network's block, block name and subsites."""
    from flows.network_add_site import network_add_site
    from flows.provision_wordpress import provision_wordpress
    from pressfleet.lab.blocks import server_for
    from tests.acme import BIND, DNS_PORT, MGMT_PORT

    host = lab_pool.get("ms", stack=True)
    server = server_for(host)
    acme = dict(tls_mode="acme", acme_server=pebble.directory_url, acme_ca_bundle=pebble.ca_pem)
    kinds = {"dir": ("subdirectory", "dir.lab.test"), "sub": ("subdomain", "sub.lab.test")}
    out = {"host": host, "server": server, "resolver": f"{BIND}:{DNS_PORT}"}
    for key, (kind, domain) in kinds.items():
        pebble.add_a(domain, host.address)
        site = make_site(name=f"{key}net", domain=domain, title=f"{kind} network", multisite=kind, server=server,
                         dns01_api_url=f"http://{BIND}:{MGMT_PORT}" if kind == "subdomain" else None, **acme)
        block = f"test-{key}net"
        site.save(block, overwrite=True)
        provision_wordpress(server=server, site=site, verify=False)
        made = {slug: network_add_site(network=site, slug=slug, title=title, admin_email=f"{slug}@lab.test")
                for slug, title in SUBSITES.items()}
        out[key] = {"site": site, "block": block, "subsites": made, "domain": domain}
    yield out
    # the session's later tests see no network they did not make (a fleet-wide run would reach this host)
    from tasks.remove import delete_site_blocks

    for key in kinds:
        delete_site_blocks(f"{key}net", out[key]["block"])
    delete_site_blocks("conv", "test-conv-unsaved")  # its secrets (the converted site's block is never saved)
    lab_pool.stop("ms")


def https(networks, host: str, path: str = "/", *args: str) -> subprocess.CompletedProcess:
    """curl from this machine to the lab host, by name (SNI and Host), through its firewall."""
    return subprocess.run(["curl", "-ksS", "--max-time", "20", "--resolve", f"{host}:443:{networks['host'].address}",
                           *args, f"https://{host}{path}"], capture_output=True, text=True, timeout=60)


def served_certificate(networks, host: str) -> str:
    """Issuer and names of the certificate the lab host serves for HOST."""
    pem = subprocess.run(["openssl", "s_client", "-connect", f"{networks['host'].address}:443", "-servername", host],
                         input="", capture_output=True, text=True, timeout=30).stdout
    return subprocess.run(["openssl", "x509", "-noout", "-issuer", "-ext", "subjectAltName"], input=pem,
                          capture_output=True, text=True, timeout=30).stdout


def vhost_digest(conn, site) -> str:
    return hashlib.sha256(run(conn, ["cat", site.config().nginx_vhost_path]).stdout.encode()).hexdigest()


def wp(conn, site, blog_id: int, code: str) -> str:
    """PHP with WordPress loaded as the network's user, switched to subsite BLOG_ID."""
    cfg = site.config()
    php = (f"define('ABSPATH', '{cfg.web_root}/'); $_SERVER['HTTP_HOST'] = '{cfg.domain}'; "
           f"$_SERVER['REQUEST_URI'] = '/'; require ABSPATH . 'wp-load.php'; switch_to_blog({blog_id}); {code}")
    return run(conn, ["runuser", "-u", cfg.user, "--", "php", "-r", php]).stdout.strip()


def test_each_subsite_of_both_networks_serves_its_own_title_over_https(networks):
    seen = {}
    for key in ("dir", "sub"):
        net = networks[key]
        for slug, title in SUBSITES.items():
            url = net["subsites"][slug]["url"]
            host, path = url.removeprefix("https://").split("/", 1)
            expected = f"{slug}.{net['domain']}" if key == "sub" else net["domain"]
            assert host == expected and path == ("" if key == "sub" else f"{slug}/"), url
            page = https(networks, host, "/" + path)
            assert f"<title>{title}" in page.stdout, (url, page.stdout[:300], page.stderr)
            seen[url] = title
        main = https(networks, net["domain"], "/")
        assert f"{net['site'].multisite} network" in main.stdout, main.stdout[:300]
    assert len(seen) == 4
    # the subdomain network's certificate is pebble's wildcard (DNS-01): one certificate for every subsite
    wildcard = served_certificate(networks, "alpha.sub.lab.test")
    assert "Pebble" in wildcard and "DNS:*.sub.lab.test" in wildcard and "DNS:sub.lab.test" in wildcard, wildcard
    assert "DNS:dir.lab.test" in served_certificate(networks, "dir.lab.test")
    # a subsite's wp-admin path reaches WordPress's own files (the subdirectory rules): the login redirect
    admin = https(networks, "dir.lab.test", "/alpha/wp-admin/", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}")
    assert admin.stdout.startswith("302 https://dir.lab.test/alpha/wp-login.php?redirect_to="), admin.stdout
    # collect-metrics probes each subsite at its own address (its series' site), as WordPress lists them
    from datetime import datetime, timezone

    from pressfleet.metrics import collect

    with connect_lab(networks["host"]) as conn:
        for key, labels in (("dir", {"dir.lab.test/alpha", "dir.lab.test/beta"}),
                            ("sub", {"alpha.sub.lab.test", "beta.sub.lab.test"})):
            ref = collect.SiteRef.from_config(networks[key]["site"].config())
            out = run(conn, collect.collect_command([ref]), stdin=collect.script_text(), timeout=120).stdout
            probed = collect.parse_metrics(out, now=datetime.now(timezone.utc), sites=[ref])
            status = {s.site: s.value for s in probed.samples if s.name == "http_status"}
            assert status == {networks[key]["domain"]: 200.0, **{label: 200.0 for label in labels}}, status


def test_a_mapped_domain_gets_its_own_certificate_and_the_old_address_redirects(networks, pebble, prefect_harness):
    from blocks.site import WordPressSite
    from flows.network_map_domain import network_map_domain
    from flows.provision_wordpress import provision_wordpress

    net = networks["dir"]
    pebble.add_a("beta.example.test", networks["host"].address)
    result = network_map_domain(network=net["site"], subsite="beta", domain="beta.example.test",
                                block_name=net["block"], resolver=networks["resolver"])
    assert result["resolves_to"] == [networks["host"].address]
    assert result["rate_limit"] == "acme-certificates-example.test"
    page = https(networks, "beta.example.test", "/")
    assert "<title>Beta subsite" in page.stdout, page.stdout[:300]
    cert = served_certificate(networks, "beta.example.test")
    assert "Pebble" in cert and "DNS:beta.example.test" in cert, cert
    old = https(networks, "dir.lab.test", "/beta/some/post/", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}")
    assert old.stdout == "301 https://beta.example.test/some/post/", old.stdout
    admin = https(networks, "dir.lab.test", "/beta/wp-admin/", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}")
    assert admin.stdout == "301 https://beta.example.test/wp-admin/", admin.stdout  # not the main site's wp-admin
    assert "<title>Alpha subsite" in https(networks, "dir.lab.test", "/alpha/").stdout  # the neighbour is untouched
    saved = WordPressSite.load(net["block"])
    assert [(m.slug, m.domain) for m in saved.mapped_domains] == [("beta", "beta.example.test")]
    # provisioning renders the vhost from the block: the mapping stays
    provision_wordpress(server=networks["server"], site=saved, components=["nginx"], verify=False)
    assert "<title>Beta subsite" in https(networks, "beta.example.test", "/").stdout
    net["site"] = saved


def test_a_mapping_that_points_elsewhere_or_gets_no_certificate_changes_nothing(networks, pebble, prefect_harness):
    from flows.network_map_domain import network_map_domain
    from pressfleet.validate import InvalidInput
    from tasks.network import NetworkError, subsites

    net = networks["dir"]
    site = net["site"]
    with connect_lab(networks["host"]) as conn:
        before = (vhost_digest(conn, site), subsites(conn, site.config()))
        pebble.add_a("elsewhere.example.test", ELSEWHERE)
        with pytest.raises(InvalidInput, match=f"resolves to {ELSEWHERE}"):
            network_map_domain(network=site, subsite="alpha", domain="elsewhere.example.test",
                               block_name=net["block"], resolver=networks["resolver"])
        with pytest.raises(InvalidInput, match="does not resolve"):
            network_map_domain(network=site, subsite="alpha", domain="nowhere.example.test", resolver=networks["resolver"])
        for bad in ("-bad-.example.test", "dir.lab.test", "beta.example.test"):
            with pytest.raises((InvalidInput, ValueError)):
                network_map_domain(network=site, subsite="alpha", domain=bad, resolver=networks["resolver"])
        with pytest.raises(InvalidInput, match="no subsite"):
            network_map_domain(network=site, subsite="gamma", domain="gamma.example.test", resolver=networks["resolver"])
        # the domain points here but the ACME CA cannot be reached: no certificate, and every step undone
        pebble.add_a("nocert.example.test", networks["host"].address)
        broken = site.model_copy(update={"acme_server": pebble.directory_url.replace(":14000", ":14999")})
        with pytest.raises(NetworkError, match="did not issue a certificate for nocert.example.test"):
            network_map_domain(network=broken, subsite="alpha", domain="nocert.example.test",
                               block_name=net["block"], resolver=networks["resolver"])
        assert (vhost_digest(conn, site), subsites(conn, site.config())) == before
        assert not run(conn, ["test", "-e", "/etc/letsencrypt/live/nocert.example.test"], check=False).ok
        assert not run(conn, ["grep", "-q", "elsewhere\\|nocert", "/etc/hosts"], check=False).ok
    assert "<title>Alpha subsite" in https(networks, "dir.lab.test", "/alpha/").stdout
    from blocks.site import WordPressSite

    assert [m.domain for m in WordPressSite.load(net["block"]).mapped_domains] == ["beta.example.test"]


def test_one_subsite_restored_alone_while_the_other_keeps_a_later_post(networks, prefect_harness, tmp_path):
    from blocks.storage import LocalStorage
    from flows.backup_site import backup_site
    from flows.restore_site import restore_site

    net = networks["sub"]
    site = net["site"]
    alpha = net["subsites"]["alpha"]["blog_id"]
    beta = net["subsites"]["beta"]["blog_id"]
    folder = tmp_path / "backups"
    folder.mkdir()
    storage = LocalStorage(path=str(folder), encryption="none")
    uploads = f"{site.config().uploads_dir}/sites/{alpha}"
    with connect_lab(networks["host"]) as conn:
        kept = wp(conn, site, alpha, "echo wp_insert_post(['post_title' => 'Alpha before', 'post_status' => 'publish']);")
        run(conn, ["runuser", "-u", site.config().user, "--", "sh", "-c", 'mkdir -p "$1" && echo before > "$1/a.txt"',
                   "sh", uploads])
        [backup] = backup_site(site=site, storage=storage)
        lost = wp(conn, site, alpha, "echo wp_insert_post(['post_title' => 'Alpha after', 'post_status' => 'publish']);")
        run(conn, ["runuser", "-u", site.config().user, "--", "sh", "-c", 'echo after > "$1/a.txt"', "sh", uploads])
        later = wp(conn, site, beta, "echo wp_insert_post(['post_title' => 'Beta after the backup', 'post_status' => 'publish']);")

        result = restore_site(site=site, storage=storage, backup_id=backup["backup"], parts=[f"subsite:{alpha}"])

        assert f"subsite:{alpha}" in " ".join(result["restored"]), result
        assert wp(conn, site, alpha, f"echo get_post({kept}) ? 'yes' : 'no';") == "yes"
        assert wp(conn, site, alpha, f"echo get_post({lost}) ? 'yes' : 'no';") == "no"
        assert run(conn, ["cat", f"{uploads}/a.txt"]).stdout == "before\n"
        assert wp(conn, site, beta, f"echo get_post({later})->post_title;") == "Beta after the backup"
    assert "<title>Alpha subsite" in https(networks, "alpha.sub.lab.test", "/").stdout
    from pressfleet.validate import InvalidInput

    with pytest.raises(InvalidInput, match="holds no tables of subsite 77"):
        restore_site(site=site, storage=storage, backup_id=backup["backup"], parts=["subsite:77"])
    with pytest.raises(InvalidInput, match="subsite:N"):
        restore_site(site=site, storage=storage, backup_id=backup["backup"], parts=["subsite:1"])


def test_a_single_site_converts_to_a_network_and_a_subsite_is_removed_after_a_backup(networks, prefect_harness,
                                                                                    tmp_path):
    from blocks.storage import LocalStorage
    from flows.network_add_site import network_add_site
    from flows.network_remove_site import network_remove_site
    from flows.provision_wordpress import provision_wordpress
    from pressfleet.validate import InvalidInput
    from tasks.network import subsites
    from tasks.wordpress import bootstrap

    server = networks["server"]
    single = make_site(name="conv", domain="conv.lab.test", title="Single before", server=server)
    provision_wordpress(server=server, site=single, verify=False)
    with pytest.raises(InvalidInput, match="not a network"):
        network_add_site(network=single, slug="early")
    with connect_lab(networks["host"]) as conn:
        post = wp_single(conn, single, "echo wp_insert_post(['post_title' => 'Written as a single site', "
                                       "'post_status' => 'publish']);")
        net = single.model_copy(update={"multisite": "subdirectory"})
        report = provision_wordpress(server=server, site=net, components=["wordpress", "nginx"], verify=False)
        [step] = [s for s in report.steps if s["name"] == "wordpress"]
        assert any("network installed" in c for c in step["changed"]), step
        assert bootstrap(conn, net.config(), "status")["multisite"] is True
        assert wp(conn, net, 1, f"echo get_post({post})->post_title;") == "Written as a single site"
        assert "<title>Single before" in https(networks, "conv.lab.test", "/").stdout
        # the address it published before still serves the post (the site keeps its permalinks)
        assert "Written as a single site" in https(networks, "conv.lab.test", "/written-as-a-single-site/").stdout
        again = provision_wordpress(server=server, site=net, components=["wordpress"], verify=False)
        assert [s for s in again.steps if s["name"] == "wordpress"][0]["changed"] == []  # a re-run changes nothing
        with pytest.raises(RuntimeError, match="does not become a single site again"):
            provision_wordpress(server=server, site=single, components=["wordpress"], verify=False)

        from tasks.network import NetworkError

        with pytest.raises(NetworkError, match="main site has a page or post at /written-as-a-single-site/"):
            network_add_site(network=net, slug="written-as-a-single-site")  # its path would hide the post
        made = network_add_site(network=net, slug="gone", title="Going away", admin_email="gone@lab.test")
        assert made["admin_made"]
        blog = made["blog_id"]
        assert "<title>Going away" in https(networks, "conv.lab.test", "/gone/").stdout
        folder = tmp_path / "backups"
        folder.mkdir()
        removed = network_remove_site(network=net, subsite="gone",
                                      storage=LocalStorage(path=str(folder), encryption="none"))
        assert removed["backup"] and removed["blog_id"] == blog
        assert [s.blog_id for s in subsites(conn, net.config())] == [1]
        assert wp_single(conn, net, "echo get_user_by('email', 'gone@lab.test') ? 'kept' : 'none';") == "kept"
        tables = run(conn, ["mariadb", "--batch", "--skip-column-names", "conv", "-e",
                            f"SHOW TABLES LIKE 'wp\\_{blog}\\_%'"]).stdout
        assert tables.strip() == "", tables
        with pytest.raises(InvalidInput, match="main site"):
            network_remove_site(network=net, subsite="1", storage=LocalStorage(path=str(folder), encryption="none"))


def wp_single(conn, site, code: str) -> str:
    cfg = site.config()
    php = (f"define('ABSPATH', '{cfg.web_root}/'); $_SERVER['HTTP_HOST'] = '{cfg.domain}'; "
           f"require ABSPATH . 'wp-load.php'; {code}")
    return run(conn, ["runuser", "-u", cfg.user, "--", "php", "-r", php]).stdout.strip()


def test_a_network_upgrade_reaches_every_subsites_tables(networks):
    """update-sites runs the bootstrap's `upgrade` once per network: the main site's (and the network's) tables,
    then each subsite whose db_version is behind core's, as wp-admin/network/upgrade.php does."""
    from tasks.wordpress import bootstrap

    net = networks["sub"]
    cfg = net["site"].config()
    ids = [net["subsites"][slug]["blog_id"] for slug in SUBSITES]
    with connect_lab(networks["host"]) as conn:
        current = int(wp(conn, net["site"], 1, "echo $GLOBALS['wp_db_version'];"))
        for blog in ids:  # as after a core update: the subsites' tables are one release behind
            wp(conn, net["site"], blog, f"update_option('db_version', {current - 1});")
        out = bootstrap(conn, cfg, "upgrade")
        assert out["subsites_upgraded"] == len(ids) and out["upgraded"] is None, out
        assert [int(wp(conn, net["site"], b, "echo get_option('db_version');")) for b in ids] == [current] * len(ids)
        assert bootstrap(conn, cfg, "upgrade") == {"upgraded": None, "subsites_upgraded": 0}


def test_certificates_per_registered_domain_are_a_prefect_rate_limit(prefect_harness):
    from prefect.client.orchestration import get_client

    from pressfleet.multisite.ratelimit import RateLimited, take_certificate_slot

    assert take_certificate_slot("a.ratelimit.example.co.uk", timeout_s=5, per_week=2) == \
        "acme-certificates-example.co.uk"
    take_certificate_slot("b.example.co.uk", timeout_s=5)  # another name of the same registered domain: its slots
    with pytest.raises(RateLimited, match="example.co.uk"):
        take_certificate_slot("c.example.co.uk", timeout_s=2)
    take_certificate_slot("other.example.org", timeout_s=5, per_week=2)  # another registered domain: its own limit
    with get_client(sync_client=True) as client:
        limit = client.read_global_concurrency_limit_by_name("acme-certificates-example.co.uk")
    assert limit.limit == 2 and abs(limit.slot_decay_per_second - 2 / (7 * 24 * 3600)) < 1e-12


def test_publishing_in_a_subsite_purges_that_subsites_cached_pages(networks):
    net = networks["dir"]
    page = lambda: https(networks, "dir.lab.test", "/alpha/", "-D", "-")  # noqa: E731
    page()
    cached = page()
    assert "x-cache-status: hit" in cached.stdout.lower(), cached.stdout[:400]
    with connect_lab(networks["host"]) as conn:
        wp(conn, net["site"], net["subsites"]["alpha"]["blog_id"],
           "wp_insert_post(['post_title' => 'Fresh in alpha', 'post_status' => 'publish']);")
    assert "Fresh in alpha" in page().stdout  # the purge on publish reached this subsite's own page
    assert "Fresh in alpha" not in https(networks, "dir.lab.test", "/beta/").stdout
    assert "Fresh in alpha" not in https(networks, "dir.lab.test", "/").stdout  # and no other site's content
