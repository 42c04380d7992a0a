"""Re-provisioning a live site on a real lab host (issue 9, item 16): a re-run never changes content, an
unpinned `latest.tar.gz` that moved on is noted and left alone, and a release change swaps core around
wp-content (never copied), runs WordPress's wp_upgrade() and is reported as an update. The site's user owns
its web root here ("PHP may write only to uploads" off) and plants links where root writes: root writes
through none of them.

Two real releases: Debian 12's WordPress (the lab mirror's) and Debian 13's (pressfleet.lab.wpmirror repacks
both). The site is provisioned once on the session's `writable_host` (shared with the privilege module, whose
site is beside it); the tests run in order on it."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import tarfile

import pytest

from pressfleet.lab import hosts as lab
from pressfleet.lab import wpmirror
from pressfleet.ssh.remote import run
from tasks.wordpress import bootstrap
from tests.conftest import TEST_PREFIX, connect_lab, make_site

pytestmark = pytest.mark.lab

HOME = "/var/www/blog"
DOCROOT = f"{HOME}/htdocs"
EDITED_TITLE = "Renamed by its editor"
VICTIM = "/root/pressfleet-victim"  # root-owned files outside the site that planted links point at
VICTIM_DIR = "/etc/pressfleet-victim.d"


def _db_version_in(archive) -> int:
    with tarfile.open(archive) as tar:
        text = tar.extractfile("wordpress/wp-includes/version.php").read().decode()
    return int(re.search(r"^\$wp_db_version = (\d+);", text, re.M).group(1))


@pytest.fixture(scope="module")
def releases():
    """The old release (Debian 12's) and the new (Debian 13's) on the lab mirror, and a `latest` URL of this
    test's own that serves either, with its .sha1 beside it as wordpress.org publishes it."""
    old = lab.ensure_mirror()
    files = lab._mirror_dir() / "files"
    new_path, new_sha, new_version = wpmirror.build_release(files, "trixie")
    latest = files / f"{TEST_PREFIX}latest.tar.gz"

    def publish(name: str) -> None:
        tmp = files / f"{TEST_PREFIX}latest.tmp"
        tmp.unlink(missing_ok=True)
        os.link(files / name, tmp)
        os.replace(tmp, latest)
        (files / f"{latest.name}.sha1").write_text(hashlib.sha1(latest.read_bytes()).hexdigest() + "\n")

    publish(old["url"].rsplit("/", 1)[1])
    yield {"old": old, "new": {"url": lab.mirror_url(new_path.name), "sha256": new_sha, "version": new_version,
                               "db_version": _db_version_in(new_path)},
           "latest_url": lab.mirror_url(latest.name), "publish": publish, "new_name": new_path.name}
    latest.unlink(missing_ok=True)
    (files / f"{latest.name}.sha1").unlink(missing_ok=True)


@pytest.fixture(scope="module")
def site_host(writable_host, prefect_harness, releases):
    """Site `blog` provisioned on the session's writable_host (a stack-template host shared with the privilege
    module, whose site `priv` is already there): its own site, the same Server block."""
    from flows.provision_wordpress import provision_wordpress

    host, server = writable_host.lab, writable_host.server
    site = make_site(release_url=releases["latest_url"], release_sha256=None, uploads_only_writable=False)
    report = provision_wordpress(server=server, site=site)
    assert all(c["passed"] for c in report.checks), report.checks
    conn = connect_lab(host)
    yield {"host": host, "server": server, "site": site, "conn": conn, "first": report}
    conn.close()


def wp(conn, code: str) -> str:
    """PHP with WordPress loaded, as the site's user (what a request or an editor would do)."""
    php = (f"define('ABSPATH', '{DOCROOT}/'); $_SERVER['HTTP_HOST'] = 'blog.lab.test';"
           f"require ABSPATH . 'wp-load.php'; {code}")
    return run(conn, ["runuser", "-u", "blog", "--", "php", "-r", php]).stdout.strip()


def as_site(conn, script: str, *args: str) -> None:
    run(conn, ["runuser", "-u", "blog", "--", "sh", "-c", script, "sh", *args])


def wordpress_step(report) -> dict:
    [step] = [s for s in report.steps if s["name"] == "wordpress"]
    return step


def inode(conn, path: str) -> str:
    return run(conn, ["stat", "-c", "%i", path]).stdout.strip()


def static_status(site_host, path: str) -> str:
    """The HTTP status nginx answers for PATH (from this machine, through the host's firewall)."""
    return subprocess.run(
        ["curl", "-ksS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "20",
         "--resolve", f"blog.lab.test:443:{site_host['host'].address}", f"https://blog.lab.test{path}"],
        capture_output=True, text=True, timeout=60).stdout


def status(site_host) -> dict:
    return bootstrap(site_host["conn"], site_host["site"].config(), "status")


def test_a_rerun_with_the_same_block_changes_no_content(site_host, releases):
    from flows.provision_wordpress import provision_wordpress

    conn = site_host["conn"]
    old = releases["old"]["version"]
    assert status(site_host)["version"] == old
    wp(conn, f"update_option('blogname', '{EDITED_TITLE}');")
    post = wp(conn, "echo wp_insert_post(['post_title' => 'Written before the re-run', 'post_status' => 'publish']);")
    as_site(conn, 'mkdir -p "$1" && echo first > "$1/first.txt"', f"{DOCROOT}/wp-content/uploads/2026/12")

    report = provision_wordpress(server=site_host["server"], site=site_host["site"])

    assert wordpress_step(report)["changed"] == [], wordpress_step(report)
    assert wp(conn, "echo get_option('blogname');") == EDITED_TITLE
    assert wp(conn, f"echo get_post({post})->post_title;") == "Written before the re-run"
    assert run(conn, ["cat", f"{DOCROOT}/wp-content/uploads/2026/12/first.txt"]).stdout == "first\n"
    assert status(site_host)["version"] == old
    assert all(c["passed"] for c in report.checks), report.checks


def test_latest_moving_on_is_noted_and_never_installed_unasked(site_host, releases):
    from flows.provision_wordpress import provision_wordpress

    releases["publish"](releases["new_name"])  # latest.tar.gz now serves the newer release
    before = status(site_host)

    report = provision_wordpress(server=site_host["server"], site=site_host["site"], components=["wordpress"],
                                 verify=False)

    step = wordpress_step(report)
    assert step["changed"] == []
    assert any(f"WordPress {releases['new']['version']} is available" in n for n in step["notes"]), step
    assert status(site_host) == before  # same core, same database version


def test_a_release_change_swaps_core_around_wp_content_and_runs_wp_upgrade(site_host, releases):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.provision_wordpress import provision_wordpress

    conn = site_host["conn"]
    new, old = releases["new"], releases["old"]["version"]
    uploads = f"{DOCROOT}/wp-content/uploads"
    as_site(conn, 'echo second > "$1/2026/12/second.txt"', uploads)  # an upload made between the runs
    content_inodes = (inode(conn, f"{DOCROOT}/wp-content"), inode(conn, uploads))
    # root-owned things outside the site, and the site's user's links to them where root writes during a swap
    run(conn, ["sh", "-c", 'echo victim > "$1"; mkdir -p "$2"; echo victim > "$2/keep"', "sh", VICTIM, VICTIM_DIR])
    victims = run(conn, ["sh", "-c", 'stat -c "%n %s %Y %U %a" "$1" "$2" "$2/keep"; sha256sum "$1" "$2/keep"; ls -A "$2"',
                         "sh", VICTIM, VICTIM_DIR]).stdout
    # (ads.txt is the site's own file at the web root, not core's: it stays as the site made it)
    as_site(conn, 'cd "$1" && ln -sfn "$2" .maintenance && rm -f wp-login.php && ln -s "$2" wp-login.php'
                  ' && rm -f readme.html && ln -s "$3" readme.html && mv wp-admin wp-admin.moved && ln -s "$3" wp-admin'
                  ' && ln -s "$2" ads.txt', DOCROOT, VICTIM, VICTIM_DIR)
    site = site_host["site"].model_copy(update={"release_url": new["url"], "release_sha256": new["sha256"]})

    report = provision_wordpress(server=site_host["server"], site=site, components=["wordpress"], verify=False)

    step = wordpress_step(report)
    assert f"updated core {old} -> {new['version']}" in step["changed"], step
    assert any("wp_upgrade()" in c for c in step["changed"]), step
    # the wordpress step alone leaves the new core's static files readable by nginx (its ACL)
    assert static_status(site_host, "/wp-includes/css/dashicons.min.css") == "200"
    after = status(site_host)
    assert after["version"] == new["version"]
    assert after["db_version"] == after["wp_db_version"] == new["db_version"]  # wp_upgrade() ran
    # wp-content stayed in place (never copied: the same inodes), every upload and the content with it
    assert (inode(conn, f"{DOCROOT}/wp-content"), inode(conn, uploads)) == content_inodes
    assert run(conn, ["cat", f"{uploads}/2026/12/first.txt", f"{uploads}/2026/12/second.txt"]).stdout == "first\nsecond\n"
    assert wp(conn, "echo get_option('blogname');") == EDITED_TITLE
    # no link was written through: the victims are as they were, the links are now core's own files
    assert run(conn, ["sh", "-c", 'stat -c "%n %s %Y %U %a" "$1" "$2" "$2/keep"; sha256sum "$1" "$2/keep"; ls -A "$2"',
                      "sh", VICTIM, VICTIM_DIR]).stdout == victims
    kinds = run(conn, ["sh", "-c", 'cd "$1" && stat -c "%n %F" wp-login.php readme.html wp-admin ads.txt', "sh",
                       DOCROOT]).stdout
    assert kinds.split("\n")[:4] == ["wp-login.php regular file", "readme.html regular file", "wp-admin directory",
                                      "ads.txt symbolic link"]
    leftovers = run(conn, ["sh", "-c", 'ls -A "$1"; ls -A "$2"', "sh", HOME, DOCROOT]).stdout.split()
    assert ".maintenance" not in leftovers and not [n for n in leftovers if n.startswith(".pressfleet-stage")]
    record = run(conn, ["cat", f"{HOME}/.pressfleet-release"]).stdout
    assert f"sha256={new['sha256']}" in record and f"version={new['version']}" in record
    # the artifact says it was an update
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["provision-blog"])))
    latest = max(artifacts, key=lambda a: a.created)
    assert f"**Update:** WordPress core {old} -> {new['version']}" in latest.data
    # and a second (whole) run with that block changes nothing there, and the updated site passes every check
    again = provision_wordpress(server=site_host["server"], site=site)
    assert wordpress_step(again)["changed"] == [] and wordpress_step(again)["notes"] == []
    assert all(c["passed"] for c in again.checks), again.checks  # it serves, admin logs in, Site Health...
    print(json.dumps({"update_step_seconds": step["seconds"]}))
