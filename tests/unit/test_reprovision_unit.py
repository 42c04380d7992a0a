"""Which release a re-run installs (pressfleet.plan.wprelease), as plain functions: a re-run never changes core
behind the person's back, an update is asked for by a new pin, a new URL or `update_core`, never a downgrade."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from blocks.site import WordPressSite
from pressfleet.plan import wprelease
from pressfleet.paths import TEMPLATES
from pressfleet.plan.wprelease import Decision, Fetched, HostRelease, Recorded, ReleaseRefused, decide, needs_fetch

pytestmark = pytest.mark.unit

A256, A1 = "a" * 64, "a" * 40
B256, B1 = "b" * 64, "b" * 40
URL = "https://wordpress.org/latest.tar.gz"
OLD = Fetched(sha256=A256, sha1=A1, version="6.1.9", db_version=53496)
NEW = Fetched(sha256=B256, sha1=B1, version="6.8.12", db_version=60421)


def installed(recorded: Recorded | None = Recorded(URL, A256, A1, "6.1.9"), version: str = "6.1.9",
              published: str | None = None) -> HostRelease:
    return HostRelease(recorded=recorded, installed=version, published_sha1=published, maintenance=False)


def test_inspect_output_parses_the_record_and_the_legacy_one_line_record():
    text = (f"recorded.url={URL}\nrecorded.sha256={A256}\nrecorded.sha1={A1}\nrecorded.version=6.1.9\n"
            "recorded.entries=index.php wp-admin\ninstalled=6.1.9\nmaintenance=pressfleet\n"
            f"published.sha1={B1}\n")
    host = wprelease.parse_inspect(text)
    assert host == HostRelease(Recorded(URL, A256, A1, "6.1.9"), "6.1.9", B1, True)
    legacy = wprelease.parse_inspect(f"recorded.sha256:{A256}\ninstalled=6.1.9\n")
    assert legacy.recorded == Recorded(sha256=A256) and legacy.published_sha1 is None
    assert wprelease.parse_inspect("").installed is None  # no core yet
    # a version the site's user could have written into version.php never travels on as is
    assert wprelease.parse_inspect("installed=6.1;rm -rf /\n").installed == "unknown"


def test_fetch_output_parses_and_odd_answers_are_refused():
    assert wprelease.parse_fetched(f"sha256={B256}\nsha1={B1}\nversion=6.8.12\ndb_version=60421\n") == NEW
    with pytest.raises(ValueError):
        wprelease.parse_fetched(f"sha256={B256}\nversion=6.8.12\n")


def test_a_rerun_with_the_same_pin_or_the_same_published_checksum_fetches_nothing_and_keeps_core():
    assert not needs_fetch(installed(), A256)
    assert not needs_fetch(installed(published=A1), None)
    assert decide(installed(), url=URL, pin=A256, update_core=False, fetched=None).action == "keep"


def test_latest_moving_on_is_reported_never_installed_without_update_core():
    host = installed(published=B1)
    assert needs_fetch(host, None)  # to say which version is available
    d = decide(host, url=URL, pin=None, update_core=False, fetched=NEW)
    assert d.action == "available"
    assert "6.8.12 is available" in d.reason and "installed: 6.1.9" in d.reason and "Update core" in d.reason
    assert decide(host, url=URL, pin=None, update_core=True, fetched=NEW) == Decision("update", "core 6.1.9 -> 6.8.12")


def test_a_new_pin_or_a_new_url_is_an_update():
    assert decide(installed(), url=URL, pin=B256, update_core=False, fetched=NEW).action == "update"
    other = "https://wordpress.org/wordpress-6.8.12.tar.gz"
    assert decide(installed(published=B1), url=other, pin=None, update_core=False, fetched=NEW).action == "update"


def test_the_same_archive_under_a_legacy_record_is_kept():
    host = installed(recorded=Recorded(sha1=A1), published=None)
    assert decide(host, url=URL, pin=A256, update_core=False, fetched=OLD).action == "keep"


def test_an_older_release_is_refused_in_one_sentence():
    host = installed(recorded=Recorded(URL, B256, B1, "6.8.12"), version="6.8.12")
    with pytest.raises(ReleaseRefused, match=r"WordPress 6\.1\.9, older than the installed 6\.8\.12.*restore a backup"):
        decide(host, url=URL, pin=A256, update_core=False, fetched=OLD)


def test_no_core_yet_is_an_install():
    fresh = HostRelease(recorded=None, installed=None, published_sha1=None, maintenance=False)
    assert needs_fetch(fresh, A256)
    assert decide(fresh, url=URL, pin=A256, update_core=False, fetched=OLD).action == "install"


sha256s = st.sampled_from([A256, B256, "c" * 64])
versions = st.tuples(st.integers(3, 9), st.integers(0, 12), st.integers(0, 20)).map(lambda t: "%d.%d.%d" % t)


@given(rec_sha=sha256s, got_sha=sha256s, inst=versions, got=versions, published=st.sampled_from([A1, B1, None]))
def test_without_pin_url_change_or_update_core_an_installed_core_is_never_replaced(rec_sha, got_sha, inst, got, published):
    host = installed(recorded=Recorded(URL, rec_sha, None, inst), version=inst, published=published)
    fetched = Fetched(got_sha, "d" * 40, got, None)
    assert decide(host, url=URL, pin=None, update_core=False, fetched=fetched).action in ("keep", "available")


@given(a=st.lists(st.integers(0, 30), min_size=2, max_size=3), b=st.lists(st.integers(0, 30), min_size=2, max_size=3))
def test_versions_order_like_wordpress(a, b):
    va, vb = ".".join(map(str, a)), ".".join(map(str, b))
    pad = lambda v: v + [0] * (4 - len(v))  # noqa: E731 - 6.8 is 6.8.0
    assert (wprelease.version_key(va) < wprelease.version_key(vb)) == (pad(a) < pad(b))
    assert wprelease.version_key(f"{va}-RC1") < wprelease.version_key(va)


def test_the_block_says_the_title_is_only_the_initial_value_and_update_core_defaults_off():
    fields = WordPressSite.model_fields
    assert "Only the first run sets it" in fields["title"].description
    assert fields["update_core"].default is False


def test_the_release_script_never_copies_wp_content_and_every_rename_is_mv_T():
    text = (TEMPLATES / "scripts" / "install_wordpress_release.sh").read_text()
    code = "\n".join(ln.split(" #")[0] for ln in text.splitlines() if not ln.lstrip().startswith("#"))
    assert "cp " not in code  # wp-content is never copied
    assert all(re.match(r"mv -f?T ", m) for m in re.findall(r"\bmv [^\n]*", code)), re.findall(r"\bmv [^\n]*", code)
    assert all("-h" in m for m in re.findall(r"\bchown [^\n]*", code))
    assert "chmod 0750 {}" in code and "find -P" in code
