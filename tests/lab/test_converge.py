"""The converge engine on a real host: change only what differs, undo what fails validation."""

from __future__ import annotations

import pytest

from pressfleet.ssh import converge
from pressfleet.ssh.converge import ManagedFile
from pressfleet.ssh.remote import run
from tests.conftest import connect_lab

pytestmark = pytest.mark.lab


@pytest.fixture
def conn(lab_host):
    c = connect_lab(lab_host)
    yield c
    c.close()


def test_second_run_changes_nothing(conn):
    files = [ManagedFile("/etc/pressfleet-test/a.conf", b"alpha\n", 0o640, "root", "adm"),
             ManagedFile("/etc/pressfleet-test/b.conf", b"beta\n")]
    run(conn, ["rm", "-rf", "/etc/pressfleet-test"])
    assert converge.ensure_files(conn, files) == ["/etc/pressfleet-test/a.conf", "/etc/pressfleet-test/b.conf"]
    assert converge.ensure_files(conn, files) == []
    out = run(conn, ["stat", "-c", "%a %U %G", "/etc/pressfleet-test/a.conf"]).stdout.split()
    assert out == ["640", "root", "adm"]
    # Only the differing file changes; mode drift counts as a difference.
    run(conn, ["chmod", "600", "/etc/pressfleet-test/b.conf"])
    assert converge.ensure_files(conn, files) == ["/etc/pressfleet-test/b.conf"]


def test_failed_validation_restores_last_good_and_skips_reload(conn):
    path = "/etc/pressfleet-test/c.conf"
    good = ManagedFile(path, b"good\n")
    bad = ManagedFile(path, b"bad\n")
    marker = "/etc/pressfleet-test/reloaded"
    run(conn, ["rm", "-f", path, marker])
    check = ["sh", "-c", f"grep -q good {path}"]
    reload = ["touch", marker]
    assert converge.ensure_files(conn, [good], check=check, on_change=reload) == [path]
    run(conn, ["rm", "-f", marker])
    with pytest.raises(converge.ValidationFailed, match="previous files are back"):
        converge.ensure_files(conn, [bad], check=check, on_change=reload)
    assert run(conn, ["cat", path]).stdout == "good\n"
    assert not run(conn, ["test", "-e", marker], check=False).ok
    # A new file that fails validation is removed again, not left half-applied.
    newp = "/etc/pressfleet-test/new.conf"
    with pytest.raises(converge.ValidationFailed):
        converge.ensure_files(conn, [ManagedFile(newp, b"x")], check=["false"])
    assert not run(conn, ["test", "-e", newp], check=False).ok


def test_packages_and_services(conn):
    assert converge.missing_packages(conn, ["openssh-server", "no-such-package-xyz"]) == ["no-such-package-xyz"]
    assert converge.ensure_service(conn, "ssh") == []
