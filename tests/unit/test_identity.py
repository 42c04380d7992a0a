"""Site identity (issue 9 items 5 and 6): staging databases no site can be, names from the whole domain, no
block taken from another domain, one resolver for domains, site names and block names. Pure functions."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pressfleet.fleet import dbnames
from pressfleet.fleet import sites
from pressfleet import validate as v
from pressfleet.fleet.sites import SavedSite
from pressfleet.validate import InvalidInput

pytestmark = pytest.mark.unit

_SITE_NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,30}", fullmatch=True).filter(
    lambda s: s not in v.RESERVED_NAMES and not s.startswith(("systemd", "mysql", "php", "nginx", "redis", "pf"))
    and not s.endswith(v.RESERVED_SUFFIXES))
_LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)
_DOMAINS = st.lists(_LABEL, min_size=2, max_size=6).map(
    lambda ls: ".".join(ls[:-1] + [ls[-1] if not ls[-1].isdigit() else "x" + ls[-1]]))


def _is_site_name(text: str) -> bool:
    try:
        v.site_name(text)
        return True
    except InvalidInput:
        return False


# --- item 5: staging databases ----------------------------------------------------------------------------


def test_the_issue_names_are_refused_and_staging_names_moved():
    for bad in ("shop_pfold", "shop_pfstage"):
        with pytest.raises(InvalidInput, match="staging databases") as exc:
            v.site_name(bad)
        assert str(exc.value).count(". ") == 0 and str(exc.value).endswith(".")
    assert dbnames.staging_names("shop") == ("pf_stage_shop", "pf_old_shop")


@given(_SITE_NAMES)
def test_no_staging_or_scratch_name_is_ever_a_valid_site_name(name):
    staging, old = dbnames.staging_names(name)
    assert not _is_site_name(staging) and not _is_site_name(old)
    assert dbnames.check_droppable(staging) == staging and dbnames.check_droppable(old) == old
    with pytest.raises(InvalidInput, match="refusing to drop"):
        dbnames.check_droppable(name)  # a site's database is never dropped, whatever else holds


@given(st.from_regex(r"[0-9a-f]{2,16}", fullmatch=True))
def test_scratch_names_are_never_site_names(tag):
    name = dbnames.scratch_name(tag)
    assert not _is_site_name(name) and dbnames.check_droppable(name) == name


@given(st.text(max_size=40))
def test_only_pressfleet_staging_names_can_be_dropped(text):
    try:
        name = dbnames.check_droppable(text)
    except InvalidInput:
        return
    assert re.fullmatch(r"pf_(stage|old|rt)_[a-z0-9_]{1,40}", name) and not _is_site_name(name)


def test_a_protected_database_is_refused_even_with_a_staging_name():
    with pytest.raises(InvalidInput, match="live database"):
        dbnames.check_droppable("pf_stage_shop", {"pf_stage_shop", "blog"})
    for bad in ("blog", "shop_pfold", "pf_stage_a;b", "pf_stage_a`", "mysql", "information_schema", ""):
        with pytest.raises(InvalidInput):
            dbnames.check_droppable(bad, {"blog"})


# --- item 6: names from the whole domain -----------------------------------------------------------------


@pytest.mark.parametrize("domain, name", [
    ("www.example.com", "example_com"), ("example.com", "example_com"), ("blog.example.com", "blog_example_com"),
    ("shop.a.test", "shop_a_test"), ("shop.b.test", "shop_b_test"), ("a-b.test", "a__b_test"), ("a.b.test", "a_b_test"),
    ("Blog.Lab.Test.", "blog_lab_test"), ("www.com", "www_com"),
])
def test_names_come_from_the_whole_domain(domain, name):
    assert sites.site_name_for(domain) == name


def test_names_that_would_be_invalid_get_a_short_hash():
    for domain in ("1password.com", "php.net", "pf.example", "shop.pfold", "x" * 60 + ".example.com",
                   "mysql.example.com"):
        name = sites.site_name_for(domain)
        assert re.fullmatch(r"s_[a-z0-9_]{0,18}[a-z0-9]___[0-9a-f]{8}", name) and _is_site_name(name), (domain, name)


def _www(domain: str) -> str:
    labels = domain.split(".")
    return ".".join(labels[1:]) if labels[0] == "www" and len(labels) > 2 else domain


@settings(max_examples=500)
@given(_DOMAINS)
def test_every_derived_name_is_a_valid_user_database_and_block_name(domain):
    name = sites.site_name_for(domain)
    assert v.site_name(name) == name and len(name) <= 31
    assert v.unix_user(name) == name  # the site's unix user and group
    assert re.fullmatch(r"[a-z][a-z0-9_]{0,63}", name)  # a MariaDB database and user needing no quoting
    block = sites.site_block_name(name)
    assert re.fullmatch(r"site-[a-z][a-z0-9-]*", block)
    assert sites.site_name_for(domain.upper() + ".") == name  # stable under case and a trailing dot


@settings(max_examples=1000)
@given(_DOMAINS, _DOMAINS)
def test_distinct_domains_get_distinct_names_and_blocks(a, b):
    if _www(v.domain(a)) == _www(v.domain(b)):
        assert sites.site_name_for(a) == sites.site_name_for(b)  # www.example.com is example.com
    else:
        assert sites.site_name_for(a) != sites.site_name_for(b), (a, b)
        assert sites.site_block_name(sites.site_name_for(a)) != sites.site_block_name(sites.site_name_for(b))


@given(st.lists(st.sampled_from(["a", "b", "-", "--", "."]), min_size=1, max_size=8),
       st.lists(st.sampled_from(["a", "b", "-", "--", "."]), min_size=1, max_size=8))
def test_hyphens_and_dots_never_meet(xs, ys):
    a, b = "x" + "".join(xs) + "x.test", "x" + "".join(ys) + "x.test"
    try:
        a, b = v.domain(a), v.domain(b)
    except InvalidInput:
        return
    assert (sites.site_name_for(a) == sites.site_name_for(b)) == (a == b)


# --- item 6: claiming a name, resolving a SITE --------------------------------------------------------------

SAVED = [
    SavedSite("site-shop-a-test", "shop_a_test", "shop.a.test"),
    SavedSite("site-blog", "blog", "blog.lab.test", ("www.blog.lab.test",)),
    SavedSite("my-shop", "shop", "shop.example.com"),
]


def test_a_new_domain_gets_its_derived_name():
    assert sites.claim_site_name("www.example.com", None, SAVED) == ("example_com", "site-example-com")
    assert sites.claim_site_name("shop.b.test", None, SAVED) == ("shop_b_test", "site-shop-b-test")


def test_a_saved_domain_keeps_its_site():
    assert sites.claim_site_name("blog.lab.test", None, SAVED) == ("blog", "site-blog")
    assert sites.claim_site_name("www.blog.lab.test", None, SAVED) == ("blog", "site-blog")  # an alias
    assert sites.claim_site_name("BLOG.lab.test", "blog", SAVED) == ("blog", "site-blog")
    with pytest.raises(InvalidInput, match="already site 'blog'"):
        sites.claim_site_name("blog.lab.test", "other", SAVED)


def test_a_name_another_domain_holds_is_refused_naming_the_holder():
    with pytest.raises(InvalidInput, match=r"held by shop\.example\.com \(block 'my-shop'\)") as exc:
        sites.claim_site_name("shop.b.test", "shop", SAVED)
    assert "\n" not in str(exc.value) and str(exc.value).endswith(".")
    with pytest.raises(InvalidInput, match=r"held by blog\.lab\.test"):
        sites.claim_site_name("blog.other.test", "blog", SAVED)


@pytest.mark.parametrize("typed, block", [
    ("site-blog", "site-blog"), ("blog", "site-blog"), ("blog.lab.test", "site-blog"), ("Blog.Lab.Test", "site-blog"),
    ("www.blog.lab.test", "site-blog"), ("shop.a.test", "site-shop-a-test"), ("shop_a_test", "site-shop-a-test"),
    ("www.shop.a.test", "site-shop-a-test"), ("shop", "my-shop"), ("shop.example.com", "my-shop"), ("my-shop", "my-shop"),
])
def test_a_domain_a_site_name_and_a_block_name_resolve_to_the_same_site(typed, block):
    assert sites.resolve_site_block(typed, SAVED) == block


def test_resolving_an_unknown_site_is_one_sentence():
    for typed in ("nosuch", "nosuch.example.com", "a;b"):
        with pytest.raises(InvalidInput, match="no saved WordPress site") as exc:
            sites.resolve_site_block(typed, SAVED)
        assert "\n" not in str(exc.value)
    twice = [*SAVED, SavedSite("copy", "blog2", "blog.lab.test")]
    with pytest.raises(InvalidInput, match="more than one site block"):
        sites.resolve_site_block("blog.lab.test", twice)
