"""The update core as plain functions (issue 11): the catalogue's refusals, what a site lacks, waves, and the
verdict of an update; selection of sites. The catalogue used is the one the lab mirror writes (real releases)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pressfleet.fleet.selection import Candidate, select
from pressfleet.updates.catalog import CatalogError, dump, from_entries, parse_file, release
from pressfleet.updates.plan import Installed, PageCheck, SiteChecks, outdated, parse_waves, plan_waves, regressions
from pressfleet.validate import InvalidInput

pytestmark = pytest.mark.unit

SHA = "a" * 64
ENTRIES = [
    {"kind": "core", "version": "6.1.9", "url": "http://10.200.0.1:13180/wordpress-6.1.9.tar.gz", "sha256": "1" * 64},
    {"kind": "core", "version": "6.8.12", "url": "http://10.200.0.1:13180/wordpress-6.8.12.tar.gz", "sha256": "2" * 64},
    {"kind": "plugin", "slug": "akismet", "version": "5.0.2", "url": "http://10.200.0.1:13180/a.5.0.2.zip", "sha256": "3" * 64},
    {"kind": "plugin", "slug": "akismet", "version": "5.5", "url": "http://10.200.0.1:13180/a.5.5.zip", "sha256": "4" * 64},
    {"kind": "theme", "slug": "twentytwentythree", "version": "1.6", "url": "http://10.200.0.1:13180/t.zip", "sha256": "5" * 64},
]


def test_an_entry_without_sha256_an_unknown_kind_or_a_bad_version_is_refused_by_name():
    with pytest.raises(CatalogError, match="akismet 5.5 has no sha256"):
        release({**ENTRIES[3], "sha256": ""})
    with pytest.raises(CatalogError, match="unknown component kind 'widget'"):
        release({**ENTRIES[3], "kind": "widget"})
    with pytest.raises(CatalogError, match="version must look like"):
        release({**ENTRIES[3], "version": "5.5; rm -rf /"})
    with pytest.raises(CatalogError, match="slug is a-z"):
        release({**ENTRIES[3], "slug": "../akismet"})
    with pytest.raises(CatalogError, match="twice with different sha256"):
        from_entries([ENTRIES[3], {**ENTRIES[3], "sha256": SHA}])


def test_a_catalogue_file_round_trips_and_orders_versions_as_wordpress_does():
    cat = parse_file(dump(from_entries(ENTRIES).releases))
    assert cat.newest("core", "wordpress").version == "6.8.12"  # 6.8.12 > 6.1.9 (not text order)
    assert [r.version for r in cat.versions("plugin", "akismet")] == ["5.0.2", "5.5"]
    with pytest.raises(CatalogError, match="has no plugin 'hello'"):
        cat.find("plugin", "hello", "1.0")
    with pytest.raises(CatalogError, match=r"no plugin akismet 9.9 \(it lists 5.0.2, 5.5\)"):
        cat.find("plugin", "akismet", "9.9")
    with pytest.raises(CatalogError, match="list of releases"):
        parse_file("releases: 3")


def test_outdated_lists_only_what_the_catalogue_has_newer_core_first():
    cat = from_entries(ENTRIES)
    site = Installed(core="6.1.9", plugins={"akismet": "5.0.2", "own-plugin": "0.1"},
                     themes={"twentytwentythree": "1.6", "twentytwentyfive": "1.3"})
    found = outdated(site, cat)
    assert [p.describe() for p in found] == ["WordPress 6.1.9 -> 6.8.12", "plugin akismet 5.0.2 -> 5.5"]
    assert [p.describe() for p in outdated(site, cat, ["theme"])] == []
    newer = Installed(core="6.9", plugins={"akismet": "5.5"})
    assert outdated(newer, cat) == []  # never a downgrade


def test_waves_are_cumulative_and_every_site_is_in_exactly_one():
    names = [f"s{i}" for i in range(8)]
    assert plan_waves(names, "1,25%,100%") == [["s0"], ["s1"], names[2:]]
    assert plan_waves(names, "2") == [names[:2], names[2:]]  # the last wave always reaches every site
    assert plan_waves(["a"], "1,25%,100%") == [["a"]]
    for bad in ("", "0", "150%", "a,b", "-1"):
        with pytest.raises(CatalogError):
            parse_waves(bad)


@given(st.integers(min_value=0, max_value=60),
       st.lists(st.one_of(st.integers(1, 30).map(str), st.integers(1, 100).map(lambda n: f"{n}%")), min_size=1, max_size=5))
def test_waves_property_each_site_once_in_order(count, parts):
    names = [f"s{i}" for i in range(count)]
    waves = plan_waves(names, ",".join(parts))
    assert [n for w in waves for n in w] == names
    assert all(waves)


def _checks(*statuses: int, fatals: int = 0, diff=None) -> SiteChecks:
    return SiteChecks(pages=tuple(PageCheck(f"/p{i}", s, 0.1) for i, s in enumerate(statuses)),
                      error_log_bytes=0, fatals=fatals, screenshot_difference=diff)


def test_regressions_name_each_broken_page_new_fatals_and_a_changed_look():
    assert regressions(_checks(200, 200, 404), _checks(200, 301, 404)) == ["/p1 answered 301 (was 200)"]
    assert regressions(_checks(200, 404), _checks(200, 500)) == []  # it was not answering 2xx before either
    assert regressions(_checks(200, fatals=2), _checks(200, fatals=3)) == [
        "1 new PHP fatal error(s) in the site's error log"]
    assert "looks different" in regressions(_checks(200), _checks(200, diff=0.3), screenshot_threshold=0.1)[0]
    assert regressions(_checks(200), _checks(200, diff=0.05), screenshot_threshold=0.1) == []


CANDIDATES = [Candidate("site-a", "a", "a.example.com", tags=("eu", "shop"), server="web1", address="10.0.0.1"),
              Candidate("site-b", "b", "b.example.com", tags=("eu",), server="web2", address="10.0.0.2",
                        template="shop"),
              Candidate("site-c", "c", "c.example.com", server="web2", address="10.0.0.2")]


def test_selection_by_name_domain_tag_server_template_and_all():
    pick = lambda *s: [c.name for c in select(CANDIDATES, s)]  # noqa: E731
    assert pick("a.example.com", "site-c") == ["a", "c"]
    assert pick("tag:eu") == ["a", "b"]
    assert pick("server:web2") == ["b", "c"] == pick("server:10.0.0.2")
    assert pick("template:shop") == ["b"]
    assert pick("all", "tag:eu") == ["a", "b", "c"]  # each site once


def test_a_selector_that_matches_nothing_is_refused_by_name():
    for bad, message in (("tag:nope", "'tag:nope' matches no saved site"), ("server:web9", "matches no saved site"),
                         ("colour:red", "unknown selector"), ("tag:Bad Tag", "tag 'Bad Tag'"),
                         ("nosuch.example.com", "nosuch")):
        with pytest.raises(InvalidInput, match=message):
            select(CANDIDATES, [bad])
    with pytest.raises(InvalidInput, match="name them"):
        select(CANDIDATES, [])


def test_bulk_settings_and_logins_are_checked_before_any_site_is_touched():
    from tasks.bulk import login, parse_setting

    assert parse_setting("wp:blogdescription=Hello, world") == ("blogdescription", "Hello, world")
    assert parse_setting("wp:timezone_string=Europe/Paris") == ("timezone_string", "Europe/Paris")
    for bad, says in (("blogdescription=x", "wp:OPTION=VALUE"), ("wp:siteurl=https://evil.example", "manages siteurl"),
                      ("wp:Bad-Name=x", "option name"), ("wp:blogname=a\nb", "one line"), ("php:memory_limit=1G", "wp:")):
        with pytest.raises(InvalidInput, match=says):
            parse_setting(bad)
    assert login("ops2") == "ops2"
    with pytest.raises(InvalidInput):
        login("x; drop table")


def test_a_template_sets_only_site_options_and_a_site_keeps_what_it_overrides(monkeypatch):
    from blocks import template as tpl
    from blocks.site import WordPressSite

    shop = tpl.SiteTemplate(options={"page_cache_ttl_s": 600, "allow_xmlrpc": True}, tags=["shop"], plugins=["akismet"])
    monkeypatch.setattr(tpl, "load_template", lambda name: shop)
    base = dict(name="a", domain="a.example.com", admin_email="x@example.com", template="shop")
    site = tpl.with_template(WordPressSite(**base, tags=["eu"]))
    assert (site.page_cache_ttl_s, site.allow_xmlrpc, site.tags) == (600, True, ["eu", "shop"])
    own = tpl.with_template(WordPressSite(**base, page_cache_ttl_s=120, overrides=["page_cache_ttl_s"]))
    assert (own.page_cache_ttl_s, own.allow_xmlrpc) == (120, True)
    plain = WordPressSite(name="b", domain="b.example.com", admin_email="x@example.com")
    assert tpl.with_template(plain) is plain
    for bad in ({"options": {"domain": "evil.example"}}, {"options": {"server": None}},
                {"options": {"page_cache_ttl_s": 0}}, {"plugins": ["../x"]}):
        with pytest.raises(ValueError):
            tpl.SiteTemplate(**bad)
    with pytest.raises(ValueError, match="overrides name options"):
        WordPressSite(**base, overrides=["colour"])
