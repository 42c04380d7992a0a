"""Site code's pure parts and its control-side build (real git and Composer on this machine, no host)."""

from __future__ import annotations

import json
import re
import shlex
from datetime import datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pressfleet.deploy import releases as rel
from pressfleet.deploy import source
from pressfleet.validate import InvalidInput, component_slug, git_ref, git_repo
from tests.sitecode import commit, git, plugin_repo

pytestmark = pytest.mark.unit

_SAFE = re.compile(r"^[A-Za-z0-9._/+@:~-]+$")


@pytest.mark.parametrize("ref", ["main", "v1.2.3", "release/2026-12", "0123abcd", "feature/a+b", "_x"])
def test_git_refs_people_use_pass(ref):
    assert git_ref(ref) == ref


@pytest.mark.parametrize("ref", ["-x", "--upload-pack=x", "a..b", "a//b", "a/", "a.lock", "a/.b", "a b", "a;b",
                                 "a@{1}", "", "a\nb", "x" * 201, "$(id)", "a~1^"])
def test_git_refs_that_git_or_a_shell_would_misread_are_refused(ref):
    with pytest.raises(InvalidInput):
        git_ref(ref)


@given(st.one_of(st.text(max_size=60), st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9._/+-]{0,30}", fullmatch=True)))
def test_a_ref_that_passes_is_never_an_option_and_needs_no_quoting(raw):
    try:
        ref = git_ref(raw)
    except InvalidInput:
        return
    assert not ref.startswith("-") and ".." not in ref and shlex.quote(ref) == ref


@pytest.mark.parametrize("repo", ["/srv/git/theme.git", "git@git.example.com:team/theme.git",
                                  "ssh://deploy@git.example.com:2222/team/theme.git", "ssh://git.example.com/x"])
def test_repositories_over_ssh_or_a_local_path_pass(repo):
    assert git_repo(repo) == repo


@pytest.mark.parametrize("repo", ["ext::sh -c id", "file:///etc", "https://example.com/x.git", "relative/path",
                                  "/srv/../etc", "git@host:-oProxyCommand=id", "ssh://-oProxyCommand=id/x",
                                  "git@host:../x", "/srv/a b", "git@ho_st:x", "ssh://host:99999/x", ""])
def test_other_transports_and_option_like_repositories_are_refused(repo):
    with pytest.raises(InvalidInput):
        git_repo(repo)


@given(st.one_of(st.text(max_size=80), st.from_regex(r"(ssh://)?[a-z]{1,5}@[a-z.-]{1,12}[:/][A-Za-z0-9._/~+-]{1,20}",
                                                    fullmatch=True)))
def test_a_repository_that_passes_uses_ssh_or_a_path_and_needs_no_quoting(raw):
    try:
        repo = git_repo(raw)
    except InvalidInput:
        return
    assert _SAFE.fullmatch(repo) and not repo.startswith("-") and "::" not in repo
    assert repo.startswith(("/", "ssh://")) or re.match(r"^[a-z_][a-z0-9_.-]*@", repo)


@given(st.text(max_size=70))
def test_component_slugs_are_plain_folder_names(raw):
    try:
        slug = component_slug(raw)
    except InvalidInput:
        return
    assert re.fullmatch(r"[a-z0-9][a-z0-9_-]*", slug) and len(slug) <= 64


def test_release_ids_sort_by_time_and_name_their_commit():
    c = "0123456789abcdef0123456789abcdef01234567"
    a = rel.release_id(c, datetime(2026, 12, 3, 17, 0, tzinfo=timezone.utc))
    assert a == "20261203T170000Z-0123456789ab" and rel.RELEASE_ID.fullmatch(a)
    b = rel.release_id(c, datetime(2026, 12, 3, 17, 0, tzinfo=timezone.utc), taken=(a,))
    assert b == a + "-2" and rel.RELEASE_ID.fullmatch(b) and rel.commit_of(b) == c[:12]
    with pytest.raises(rel.ReleaseError):
        rel.release_id("main")


@given(st.lists(st.integers(0, 10**6), min_size=0, max_size=12, unique=True), st.integers(1, 6), st.data())
def test_pruning_keeps_the_newest_and_always_the_current(stamps, keep, data):
    names = [f"r{n:07d}" for n in sorted(stamps)]
    current = data.draw(st.sampled_from(names)) if names else None
    gone = rel.to_prune(names, current, keep)
    kept = [n for n in names if n not in gone]
    assert current not in gone
    assert len(kept) == min(keep, len(names))
    assert set(gone) <= set(names)
    if current in names[-keep:]:
        assert kept == names[-keep:]


def test_a_rollback_goes_to_the_release_before_the_current_one():
    host = rel.OnHost("plugin", "x", ("r1", "r2", "r3"), "r3", "/var/www/x/releases/plugins-x/current")
    assert rel.rollback_target(host) == "r2"
    assert rel.rollback_target(host, "r1") == "r1"
    with pytest.raises(rel.ReleaseError, match="already the current"):
        rel.rollback_target(host, "r3")
    with pytest.raises(rel.ReleaseError, match="no release before"):
        rel.rollback_target(rel.OnHost("plugin", "x", ("r1",), "r1"))
    with pytest.raises(rel.ReleaseError, match="no current release"):
        rel.rollback_target(rel.OnHost("plugin", "x"))


def test_the_host_listing_is_read_back():
    text = ("current 20261203T170000Z-0123456789ab\nlink /var/www/b/releases/plugins-x/current\n"
            "release 20261203T170000Z-0123456789ab\nrelease 20261201T100000Z-aaaaaaaaaaaa\nrelease junk\n")
    h = rel.parse_listing("plugin", "x", text)
    assert h.releases == ("20261201T100000Z-aaaaaaaaaaaa", "20261203T170000Z-0123456789ab")
    assert h.current == "20261203T170000Z-0123456789ab" and h.previous == "20261201T100000Z-aaaaaaaaaaaa"


@pytest.mark.parametrize("path,target,out", [("a", "b", False), ("d/a", "../b", False), ("a", "../b", True),
                                             ("d/a", "../../b", True), ("a", "/etc/passwd", True),
                                             ("d/e/a", "../x/../../y", False), ("a", "..", True)])
def test_links_out_of_the_tree_are_found(path, target, out):
    assert source.escapes(path, target) is out


def test_wordpress_headers_tell_a_theme_from_a_plugin(tmp_path):
    (tmp_path / "style.css").write_text("/*\nTheme Name: Quiet\nVersion: 1.4\n*/\nbody{}")
    assert source.identify(tmp_path) == ("theme", "Quiet", "1.4")
    p = tmp_path / "p"
    p.mkdir()
    (p / "main.php").write_text("<?php\n/**\n * Plugin Name: Loud\n * Version: 0.9.1\n */\n")
    assert source.identify(p) == ("plugin", "Loud", "0.9.1")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "index.php").write_text("<?php // Silence is golden.\n")
    with pytest.raises(rel.ReleaseError, match="neither a WordPress theme"):
        source.identify(empty)


def test_composer_path_repositories_must_stay_inside_the_repository():
    ok = {"repositories": [{"type": "path", "url": "packages/lib"}, {"packagist.org": False}]}
    assert source.composer_path_repos(ok) == ["packages/lib"]
    for url in ["../lib", "/etc", "packages/*", "~/x"]:
        with pytest.raises(rel.ReleaseError, match="not a folder inside"):
            source.composer_path_repos({"repositories": [{"type": "path", "url": url}]})


def test_a_repository_is_fetched_checked_and_built_with_composer_here(tmp_path):
    repo = plugin_repo(tmp_path / "src")
    built = source.prepare(str(repo), "v1", tmp_path / "w1")
    assert (built.kind, built.slug, built.version, built.composer) == ("plugin", "pf-hello", "1.0.0", True)
    assert built.commit == git(repo, "rev-parse", "v1")
    assert (built.folder / "vendor" / "pressfleet" / "greeter" / "src" / "Greeter.php").is_file()
    assert not (built.folder / "vendor" / "pressfleet" / "greeter").is_symlink()  # mirrored, not linked
    assert not (built.folder / ".git").exists() and built.files > 5
    with pytest.raises(rel.ReleaseError, match="out of the repository"):
        source.prepare(str(repo), "escape", tmp_path / "w2")
    with pytest.raises(rel.ReleaseError, match="no branch, tag or commit"):
        source.prepare(str(repo), "nope", tmp_path / "w3")
    # a composer.json that reaches out of the repository is refused before Composer runs
    (repo / "composer.json").write_text(json.dumps({"repositories": [{"type": "path", "url": "/etc"}]}))
    commit(repo, "reach out")
    with pytest.raises(rel.ReleaseError, match="not a folder inside"):
        source.prepare(str(repo), "main", tmp_path / "w4")
