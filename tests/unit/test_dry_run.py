"""The dry run's pure parts: diffs, the recorder, the skipped scripts, safe_files.py's dry modes (run here, as
on a host), and the text `provision --dry-run` prints."""

from __future__ import annotations

import base64
import os
import subprocess
import sys

import pytest

from pressfleet.paths import TEMPLATES
from pressfleet.plan.desired import ProvisionReport
from pressfleet.ssh import converge
from pressfleet.ssh.converge import FileState, ManagedFile, file_diff, meta_changes

pytestmark = pytest.mark.unit

SAFE_FILES = TEMPLATES / "scripts" / "safe_files.py"


def safe_files(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SAFE_FILES), *args], capture_output=True, text=True, timeout=60)


def test_a_changed_file_diffs_line_by_line_and_a_new_one_from_dev_null():
    old = b"server {\n  listen 443;\n  deny xmlrpc;\n}\n"
    new = b"server {\n  listen 443;\n}\n"
    diff = file_diff("/etc/nginx/sites-available/a", old, new)
    assert diff.startswith("--- /etc/nginx/sites-available/a\n+++ /etc/nginx/sites-available/a\n")
    assert "-  deny xmlrpc;\n" in diff.splitlines(keepends=True)
    assert not [ln for ln in diff.splitlines() if ln.startswith("+") and not ln.startswith("+++")]
    created = file_diff("/etc/a.conf", None, b"x = 1\n")
    assert created.splitlines()[:2] == ["--- /dev/null", "+++ /etc/a.conf"] and "+x = 1" in created
    assert file_diff("/etc/a.conf", b"same\n", b"same\n") == ""
    assert "No newline at end of file" in file_diff("/etc/a", b"a\n", b"b")


def test_a_secret_file_never_shows_its_content():
    secret = b"define('DB_PASSWORD', 'hunter2-very-secret');\n"
    for old in (None, b"define('DB_PASSWORD', 'old-secret');\n"):
        diff = file_diff("/var/www/s/wp-config.php", old, secret, hidden=True)
        assert "hunter2" not in diff and "old-secret" not in diff and "hidden" in diff
    f = ManagedFile("/var/www/s/wp-config.php", secret, 0o440, "root", "s")
    assert converge._secret_file(f, None)
    public = ManagedFile("/etc/nginx/conf.d/x.conf", b"x", 0o644)
    assert not converge._secret_file(public, FileState("0" * 64, 0o644, "root", "root"))
    assert converge._secret_file(public, FileState("0" * 64, 0o600, "root", "root"))  # the host's copy is private
    assert "binary" in file_diff("/usr/lib/x", b"\0\1", b"\0\2")


def test_mode_and_owner_changes_are_listed():
    f = ManagedFile("/etc/x", b"x", 0o640, "root", "adm")
    assert meta_changes(FileState("0" * 64, 0o644, "root", "root"), f) == ["mode 644 -> 640", "owner root:root -> root:adm"]
    assert meta_changes(None, f) == [] and meta_changes(FileState("0" * 64, 0o640, "root", "adm"), f) == []


def test_would_records_only_inside_a_dry_run_and_each_step_takes_its_share():
    from tasks.common import step

    assert converge.would("would do x") is False and converge.current_dry_run() is None
    with converge.dry_run() as dry:
        assert converge.would("would run `systemctl reload nginx`") is True
        with step("nginx") as result:
            dry.diffs.append({"path": "/etc/x", "diff": "--- /etc/x\n+++ /etc/x\n"})
            dry.packages.append("nginx")
        assert result.actions == ["would run `systemctl reload nginx`"] and result.packages == ["nginx"]
        assert result.diffs == [{"path": "/etc/x", "diff": "--- /etc/x\n+++ /etc/x\n"}]
        with step("php") as second:
            pass
        assert (second.actions, second.diffs, second.packages) == ([], [], [])
    assert converge.current_dry_run() is None
    with converge.dry_run(False) as none:
        assert none is None and converge.would("x") is False


def test_a_change_script_is_not_run_in_a_dry_run_and_is_named():
    class NoHost:  # any use of the connection would raise: the script must not reach it
        def __getattr__(self, name):
            raise AssertionError(f"the dry run touched the connection ({name})")

    def ensure_something(conn):
        return converge.sh(conn, "useradd x", [])

    with converge.dry_run() as dry:
        result = ensure_something(NoHost())
    assert result.ok and result.stdout == ""
    assert dry.skipped == ["not checked in a dry run: the change script of ensure_something"]


def test_safe_files_dry_modes_report_and_change_nothing(tmp_path):
    folder = tmp_path / "etc"
    folder.mkdir()
    (folder / "default").write_text("distro default\n")
    secret = tmp_path / "secret"
    secret.write_text("root's secret\n")
    (folder / "trap").symlink_to(secret)
    before = sorted(os.listdir(folder))

    absent = safe_files("absent-dry", str(folder / "default"), str(folder / "missing"))
    assert absent.returncode == 0, absent.stderr
    assert absent.stdout.split() == [str(folder / "default")] and (folder / "default").exists()

    links = safe_files("links-dry", str(folder / "enabled"), "/etc/target", str(tmp_path / "nofolder" / "l"), "/x")
    assert links.returncode == 0, links.stderr
    assert links.stdout.split() == [str(folder / "enabled"), str(tmp_path / "nofolder" / "l")]
    assert sorted(os.listdir(folder)) == before and not (tmp_path / "nofolder").exists()

    read = safe_files("read", str(folder / "default"), str(folder / "missing"))
    assert read.returncode == 0, read.stderr
    got = dict(line.split("\t") for line in read.stdout.splitlines())
    assert base64.b64decode(got[str(folder / "default")]) == b"distro default\n" and got[str(folder / "missing")] == "-"
    trap = safe_files("read", str(folder / "trap"))  # a link is never followed: refused (or read as no file)
    assert base64.b64encode(b"root's secret\n").decode() not in trap.stdout
    assert trap.returncode == 3 and "symbolic link" in trap.stderr

    refused = safe_files("install-dry", str(folder / "default"))
    assert refused.returncode != 0 and (folder / "default").read_text() == "distro default\n"


def test_the_printed_dry_run_lists_packages_actions_and_diffs():
    from pressfleet.cli.main import format_dry_run

    diff = "--- /etc/a\n+++ /etc/a\n@@ -1 +1 @@\n-old\n+new\n"
    report = ProvisionReport(
        site_url="https://a.test/", changed=True, seconds=1.0, dry_run=True, checks=[],
        steps=[{"name": "packages", "changed": ["installed 2 packages: nginx zstd"], "actions": []},
               {"name": "nginx", "changed": ["/etc/a"], "actions": ["would run `systemctl reload nginx`"]}],
        diffs=[{"step": "nginx", "path": "/etc/a", "diff": diff}], packages=["nginx", "zstd", "nginx"],
        actions=["would run `systemctl reload nginx`"])
    text = format_dry_run(report)
    assert "would install 2 packages: nginx zstd" in text
    assert "would run `systemctl reload nginx`" in text and diff.rstrip("\n") in text
    assert text.endswith("would change the host (dry run, 1.0 s; nothing was changed)")
    quiet = ProvisionReport(site_url="https://a.test/", changed=False, seconds=1.0, dry_run=True, checks=[],
                            steps=[{"name": "nginx", "changed": []}])
    assert format_dry_run(quiet) == "https://a.test/: nothing would change (dry run, 1.0 s; nothing was changed)"
