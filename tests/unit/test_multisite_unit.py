"""The pure parts of networks: slugs, mappings, registered domains, subsite parts of a restore, rendering."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, strategies as st

from pressfleet.backup.restore import split_subsites, subsite_scope
from pressfleet.fleet.siteconfig import MappedDomain, SiteConfig, WpSalts
from pressfleet.multisite.dns import parse_resolver
from pressfleet.multisite.domains import (check_mapping, find_subsite, new_subsite, parse_sites, rate_limit_name,
                                          registered_domain)
from pressfleet.render.configs import render_nginx_vhost, render_wp_config
from pressfleet.validate import RESERVED_SLUGS, InvalidInput, subsite_slug


def network(kind="subdirectory", **kw) -> SiteConfig:
    return SiteConfig(name="net", domain="net.example.com", admin_email="a@example.com", multisite=kind, **kw)


SITES = parse_sites([
    {"blog_id": 1, "domain": "net.example.com", "path": "/", "title": "Main", "home": "https://net.example.com", "main": True},
    {"blog_id": 2, "domain": "net.example.com", "path": "/alpha/", "title": "Alpha", "home": "", "main": False},
    {"blog_id": 3, "domain": "net.example.com", "path": "/beta/", "title": "Beta", "home": "", "main": False},
])


@given(st.text(max_size=60))
def test_a_slug_is_accepted_only_in_its_strict_class(raw):
    try:
        slug = subsite_slug(raw)
    except InvalidInput:
        return
    assert re.fullmatch(r"[a-z0-9](?:[a-z0-9-]{0,48}[a-z0-9])?", slug) and not slug.isdigit()
    assert slug not in RESERVED_SLUGS and not slug.startswith("wp-")


@pytest.mark.parametrize("bad", ["", "Shop", "a b", "a/b", "-a", "a-", "2024", "wp-admin", "www", "files", "a" * 51,
                                 "a;b", "a..b", "blog"])
def test_bad_slugs_are_refused(bad):
    with pytest.raises(InvalidInput):
        subsite_slug(bad)


def test_registered_domains_follow_the_public_suffix_list():
    assert registered_domain("shop.example.co.uk") == "example.co.uk"
    assert registered_domain("a.b.example.com") == "example.com"
    assert registered_domain("Shop.Example.COM.") == "example.com"
    assert rate_limit_name("x.y.example.org") == "acme-certificates-example.org"
    with pytest.raises(InvalidInput):
        registered_domain("*.example.com")


def test_a_mapping_is_refused_where_it_cannot_be_one():
    with pytest.raises(ValueError, match="only a network"):
        SiteConfig(name="one", domain="one.example.com", admin_email="a@example.com",
                   mapped_domains=(MappedDomain(slug="alpha", domain="x.example.org"),))
    site = network()
    assert check_mapping(site, "alpha", "Shop.Example.ORG").domain == "shop.example.org"
    for bad in ("net.example.com", "-x.example.org", "x_y.example.org"):
        with pytest.raises(InvalidInput):
            check_mapping(site, "alpha", bad)
    mapped = network(mapped_domains=(MappedDomain(slug="alpha", domain="shop.example.org"),))
    with pytest.raises(InvalidInput, match="cannot be mapped"):
        check_mapping(mapped, "beta", "shop.example.org")  # mapped once
    with pytest.raises(InvalidInput, match="cannot be mapped"):
        check_mapping(mapped, "alpha", "other.example.org")  # one domain per subsite
    with pytest.raises(InvalidInput, match="cannot be mapped"):
        check_mapping(network("subdomain"), "alpha", "x.net.example.com")  # the wildcard's own name
    with pytest.raises(InvalidInput, match="not a network"):
        check_mapping(SiteConfig(name="one", domain="one.example.com", admin_email="a@example.com"), "a", "x.example.org")


def test_subsites_are_found_by_slug_id_or_mapped_domain_and_new_slugs_checked():
    site = network(mapped_domains=(MappedDomain(slug="gamma", domain="gamma.example.org"),))
    rows = SITES + parse_sites([{"blog_id": 4, "domain": "gamma.example.org", "path": "/", "main": False}])
    assert find_subsite(site, rows, "beta").blog_id == 3
    assert find_subsite(site, rows, "2").slug == "alpha"
    assert find_subsite(site, rows, "gamma").blog_id == 4
    assert find_subsite(site, rows, "gamma.example.org").blog_id == 4
    with pytest.raises(InvalidInput, match="main site"):
        find_subsite(site, rows, "1")
    with pytest.raises(InvalidInput, match="no subsite 'delta'"):
        find_subsite(site, rows, "delta")
    assert new_subsite(site, rows, "delta") == ("net.example.com", "/delta/")
    assert new_subsite(network("subdomain"), [], "delta") == ("delta.net.example.com", "/")
    for taken in ("alpha", "gamma"):
        with pytest.raises(InvalidInput, match="already"):
            new_subsite(site, rows, taken)


def test_subsite_parts_of_a_restore():
    assert split_subsites(["subsite:3", "uploads", "subsite:3"]) == (["uploads"], [3])
    for bad in ("subsite:1", "subsite:x", "subsite:", "subsite:-2"):
        with pytest.raises(InvalidInput, match="subsite:N"):
            split_subsites([bad])
    assert subsite_scope(network(), [3, 12]) == (("wp_3_", "wp_12_"),
                                                 ["wp-content/uploads/sites/3", "wp-content/uploads/sites/12"])
    assert not "wp_12_posts".startswith("wp_1_")  # a prefix never takes another subsite's tables
    with pytest.raises(InvalidInput, match="not a network"):
        subsite_scope(SiteConfig(name="one", domain="one.example.com", admin_email="a@example.com"), [2])


def test_resolver_addresses():
    assert parse_resolver("10.200.0.1:8053") == ("10.200.0.1", 8053)
    assert parse_resolver("10.200.0.1") == ("10.200.0.1", 53)
    assert parse_resolver("") is None or isinstance(parse_resolver(""), tuple)  # the environment may name one
    for bad in ("resolver.example.com", "10.0.0.1:0", "10.0.0.1:x", "1.2.3.4; rm"):
        with pytest.raises(InvalidInput):
            parse_resolver(bad)


def test_network_vhosts_and_wp_config():
    single = SiteConfig(name="one", domain="one.example.com", admin_email="a@example.com")
    plain = render_nginx_vhost(single)
    assert "rewrite ^(/[^/]+)?" not in plain and "return 301 https://one.example.com$request_uri;" in plain
    directory = render_nginx_vhost(network(mapped_domains=(MappedDomain(slug="beta", domain="beta.example.org"),)))
    assert "rewrite ^(/[^/]+)?(/wp-.*) $2 last;" in directory
    assert "server_name beta.example.org;" in directory
    assert "ssl_certificate /etc/letsencrypt/live/beta.example.org/fullchain.pem;" in directory
    assert "rewrite ^/beta(/.*)$ https://beta.example.org$1 permanent;" in directory
    assert directory.count("rewrite ^/beta(") == 1  # the old address redirects on the network's server only
    sub = render_nginx_vhost(network("subdomain", mapped_domains=(MappedDomain(slug="beta", domain="beta.example.org"),)))
    assert "server_name net.example.com *.net.example.com;" in sub and "rewrite ^(/[^/]+)?" not in sub
    assert re.search(r"server_name beta\.net\.example\.com;.*?return 301 https://beta\.example\.org\$request_uri;", sub, re.S)
    config = render_wp_config(network("subdomain"), db_password="p" * 24, salts=WpSalts.generate())
    assert "define( 'SUBDOMAIN_INSTALL', true );" in config and "define( 'MULTISITE', true );" in config
    assert "define( 'WP_HOME'" not in config and "PRESSFLEET_NO_NETWORK" in config
    assert "define( 'WP_HOME', 'https://one.example.com' );" in render_wp_config(
        single, db_password="p" * 24, salts=WpSalts.generate())
