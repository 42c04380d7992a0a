from __future__ import annotations

import io
import tarfile

import pytest

from pressfleet.ssh.converge import FileState, ManagedFile, files_to_change, parse_file_states, tar_of

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("path", ["etc/x", "/etc/../x", "/etc//x", "/etc/x\n", "/etc/x/"])
def test_paths_must_be_absolute_and_normal(path):
    with pytest.raises(ValueError):
        ManagedFile(path, b"")


def test_repr_never_shows_content():
    assert "s3cret" not in repr(ManagedFile("/etc/x", b"password=s3cret"))


def test_parse_and_diff():
    f = ManagedFile("/etc/a", b"a", 0o640, "root", "adm")
    text = f"/etc/a\t{f.sha256}\t640\troot\tadm\n/etc/b\t-\n"
    states = parse_file_states(text)
    assert states == {"/etc/a": FileState(f.sha256, 0o640, "root", "adm"), "/etc/b": None}
    g = ManagedFile("/etc/b", b"b")
    assert files_to_change([f, g], states) == [g]
    assert files_to_change([ManagedFile("/etc/a", b"a", 0o644, "root", "adm")], states)
    with pytest.raises(ValueError):
        parse_file_states("garbage line")


def test_tar_carries_mode_owner_and_staged_name():
    data = tar_of([ManagedFile("/etc/a.conf", b"hello", 0o600, "www-data", "www-data")])
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        (m,) = tar.getmembers()
        assert m.name == "etc/a.conf.pressfleet-new"
        assert (m.mode, m.uname, m.gname) == (0o600, "www-data", "www-data")
        assert tar.extractfile(m).read() == b"hello"
