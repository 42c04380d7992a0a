"""The automatic update policy as plain functions (issue 11): each release's level, and per site which updates
go in automatically, which wait for approval and which never come."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from pressfleet.updates.catalog import from_entries
from pressfleet.updates.plan import Installed
from pressfleet.updates.policy import LEVELS, UpdatePolicy, level_of, pending_at, split

pytestmark = pytest.mark.unit


def _entry(kind, slug, version, security=False):
    return {"kind": kind, "slug": slug, "version": version, "url": f"http://10.200.0.1:13180/{slug}.{version}.zip",
            "sha256": "ab" * 32, "security": security}


CATALOGUE = from_entries([
    _entry("core", "wordpress", "6.1.9"), _entry("core", "wordpress", "6.1.10"), _entry("core", "wordpress", "6.8.12"),
    _entry("plugin", "akismet", "5.0.2"), _entry("plugin", "akismet", "5.5"), _entry("plugin", "akismet", "6.0"),
    _entry("plugin", "shop", "2.3.1"), _entry("plugin", "shop", "2.3.2", security=True), _entry("plugin", "shop", "3.0"),
    _entry("theme", "twentytwentythree", "1.0"), _entry("theme", "twentytwentythree", "1.6"),
])
SITE = Installed(core="6.1.9", plugins={"akismet": "5.0.2", "shop": "2.3.1", "own": "1.0"},
                 themes={"twentytwentythree": "1.0"})


def _release(kind, slug, version):
    return CATALOGUE.find(kind, slug, version)


def test_levels_follow_wordpress_for_core_and_the_first_number_for_plugins_and_themes():
    assert level_of("core", "6.1.9", _release("core", "wordpress", "6.1.10")) == "security"  # same branch
    assert level_of("core", "6.1.9", _release("core", "wordpress", "6.8.12")) == "major"  # another branch
    assert level_of("plugin", "5.0.2", _release("plugin", "akismet", "5.5")) == "minor"
    assert level_of("plugin", "5.0.2", _release("plugin", "akismet", "6.0")) == "major"
    assert level_of("plugin", "2.3.1", _release("plugin", "shop", "2.3.2")) == "security"  # marked in the catalogue
    assert level_of("theme", "1.0", _release("theme", "twentytwentythree", "1.6")) == "minor"


def test_the_default_policy_installs_security_releases_and_asks_about_the_rest():
    plan = split(SITE, CATALOGUE, UpdatePolicy())
    assert [p.describe() for p in plan["auto"]] == ["WordPress 6.1.9 -> 6.1.10", "plugin shop 2.3.1 -> 2.3.2"]
    # each component's newest release at the approval levels; a component the catalogue lacks is left alone
    assert [p.describe() for p in plan["approval"]] == [
        "WordPress 6.1.9 -> 6.8.12", "plugin akismet 5.0.2 -> 6.0", "plugin shop 2.3.1 -> 3.0",
        "theme twentytwentythree 1.0 -> 1.6"]
    assert plan["never"] == []


def test_a_policy_can_take_minor_releases_on_its_own_and_never_take_major_ones():
    policy = UpdatePolicy(minor="auto", major="never")
    plan = split(SITE, CATALOGUE, policy)
    assert [p.describe() for p in plan["auto"]] == [
        "WordPress 6.1.9 -> 6.1.10", "plugin akismet 5.0.2 -> 5.5", "plugin shop 2.3.1 -> 2.3.2",
        "theme twentytwentythree 1.0 -> 1.6"]
    assert plan["approval"] == []
    assert [p.describe() for p in plan["never"]] == [
        "WordPress 6.1.9 -> 6.8.12", "plugin akismet 5.0.2 -> 6.0", "plugin shop 2.3.1 -> 3.0"]


def test_an_unknown_action_or_level_is_refused():
    with pytest.raises(ValidationError):
        UpdatePolicy(security="sometimes")
    with pytest.raises(ValidationError):
        UpdatePolicy(patch="auto")


@given(st.sampled_from(["auto", "approval", "never"]), st.sampled_from(["auto", "approval", "never"]),
       st.sampled_from(["auto", "approval", "never"]))
def test_every_release_a_site_lacks_falls_under_exactly_the_action_its_level_has(security, minor, major):
    policy = UpdatePolicy(security=security, minor=minor, major=major)
    for kind, slug, version in [("core", "wordpress", "6.1.9"), ("plugin", "akismet", "5.0.2"),
                                ("plugin", "shop", "2.3.1"), ("theme", "twentytwentythree", "1.0")]:
        newer = [r for r in CATALOGUE.versions(kind, slug) if r.version != version
                 and CATALOGUE.versions(kind, slug).index(r) > CATALOGUE.versions(kind, slug).index(_release(kind, slug, version))]
        for level in LEVELS:
            action = getattr(policy, level)
            listed = [p for p in pending_at(SITE, CATALOGUE, policy.levels(action)) if p.slug == slug]
            at_level = [r for r in newer if level_of(kind, version, r) == level]
            if at_level:  # the newest release of the component at this action's levels is listed under it
                assert listed and listed[0].release.version in {r.version for r in newer}
                assert level_of(kind, version, listed[0].release) in policy.levels(action)
