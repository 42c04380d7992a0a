"""Pure parts of issue 9's privilege items: who sshd would lock out, the AllowGroups config, the Server block's
SSH settings, and the POSIX ACL encoding the host-side file helper writes (tests/lab/test_safety_privilege.py
runs the helper itself on a real host)."""

from __future__ import annotations

import importlib.util

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from blocks.server import Server
from pressfleet.paths import TEMPLATES
from pressfleet.render.configs import InvalidInput, render_sshd_conf
from tasks.security import locked_out, parse_keyed_accounts

pytestmark = pytest.mark.unit

KEY = ed25519.Ed25519PrivateKey.generate().private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()).decode()


def helper_module():
    spec = importlib.util.spec_from_file_location("safe_files", TEMPLATES / "scripts" / "safe_files.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


names = st.from_regex(r"[a-z][a-z0-9]{0,6}", fullmatch=True)


@given(accounts=st.dictionaries(names, st.sets(names, max_size=4), max_size=8),
       allowed=st.lists(names, min_size=1, max_size=3), joining=st.lists(names, max_size=3))
def test_locked_out_is_exactly_the_keyed_accounts_no_allowed_group_covers(accounts, allowed, joining):
    out = locked_out(accounts, allowed, joining)
    assert out == sorted(out)
    for name, groups in accounts.items():
        covered = name in joining or bool(groups & set(allowed))
        assert (name in out) is not covered


def test_keyed_accounts_are_parsed_with_their_groups():
    text = "root\troot pressfleet-ssh\nalice\talice sudo\n\n"
    assert parse_keyed_accounts(text) == {"root": {"root", "pressfleet-ssh"}, "alice": {"alice", "sudo"}}
    assert locked_out(parse_keyed_accounts(text), ["pressfleet-ssh", "sudo"], ["root"]) == []
    assert locked_out(parse_keyed_accounts(text), ["pressfleet-ssh"], ["root"]) == ["alice"]


def test_sshd_allows_groups_not_one_user():
    text = render_sshd_conf(allow_groups=["pressfleet-ssh", "sudo", "sudo"])
    lines = text.splitlines()
    assert "AllowGroups pressfleet-ssh sudo" in lines
    assert not any(ln.startswith("AllowUsers") for ln in lines)
    for bad in (["pressfleet-ssh\nAllowUsers *"], ["Sudo"], ["a b"], ["../x"]):
        with pytest.raises(InvalidInput):
            render_sshd_conf(allow_groups=bad)
    with pytest.raises(InvalidInput, match="at least one group"):
        render_sshd_conf()


def test_server_block_ssh_settings_default_to_the_login_group_and_sudo():
    server = Server(address="203.0.113.10", private_key=KEY)
    assert (server.ssh_group, server.ssh_admins, server.ssh_allow_groups) == ("pressfleet-ssh", [], ["sudo"])
    assert server.ssh_login_groups() == ["pressfleet-ssh", "sudo"]
    named = Server(address="203.0.113.10", private_key=KEY, ssh_admins=["alice", "deploy"], ssh_allow_groups=[],
                   ssh_group="ops")
    assert named.ssh_login_groups() == ["ops"]
    for bad in (dict(ssh_admins=["alice; rm -rf /"]), dict(ssh_admins=["alice", "alice"]), dict(ssh_group="A B"),
                dict(ssh_allow_groups=["sudo\nAllowUsers *"]), dict(ssh_admins="alice")):
        with pytest.raises(ValidationError):
            Server(address="203.0.113.10", private_key=KEY, **bad)


def test_acl_entries_round_trip_and_the_mask_covers_the_named_user(tmp_path):
    import os

    sf = helper_module()
    folder = tmp_path / "d"
    folder.mkdir(mode=0o750)
    os.chmod(folder, 0o750)
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert sf.grant(fd, 33, 5, os.fstat(fd), default=True)
        access = sf.acl_read(fd, "system.posix_acl_access", 0o750)
        assert access == {(sf.USER_OBJ, sf.NO_ID): 7, (sf.USER, 33): 5, (sf.GROUP_OBJ, sf.NO_ID): 5,
                          (sf.MASK, sf.NO_ID): 5, (sf.OTHER, sf.NO_ID): 0}
        default = sf.acl_read(fd, "system.posix_acl_default", 0o750)
        assert default[(sf.USER, 33)] == 5 and default[(sf.OTHER, sf.NO_ID)] == 0
        assert not sf.grant(fd, 33, 5, os.fstat(fd), default=True)  # a second run changes nothing
    finally:
        os.close(fd)
    # The kernel took it (it checks the format) and applies the default ACL to what is created inside.
    (folder / "upload.gif").write_bytes(b"GIF89a")
    inherited = sf.acl_read(os.open(folder / "upload.gif", os.O_RDONLY), "system.posix_acl_access", 0)
    assert inherited[(sf.USER, 33)] == 5 and inherited[(sf.OTHER, sf.NO_ID)] == 0


@pytest.mark.parametrize(("uid", "gid", "mode", "untrusted"), [
    (0, 0, 0o755, False), (0, 0, 0o775, False), (0, 33, 0o775, True), (1000, 0, 0o755, True),
    (0, 0, 0o1777, True), (0, 1000, 0o750, False)])
def test_a_folder_is_untrusted_when_anyone_but_root_can_change_its_entries(uid, gid, mode, untrusted):
    import os

    st = os.stat_result((0o40000 | mode, 0, 0, 1, uid, gid, 0, 0, 0, 0))
    assert bool(helper_module().others_can_change(st)) is untrusted


def test_a_file_made_private_with_chmod_stays_closed_to_nginx(tmp_path):
    import os

    sf = helper_module()
    path = tmp_path / "style.css"
    path.write_text("body{}")
    os.chmod(path, 0o640)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert sf.grant(fd, 33, 4, os.fstat(fd))                 # readable by the site's group: nginx may read
        os.chmod(path, 0o600)                                     # the owner makes it private (the mask drops)
        assert not sf.grant(fd, 33, 4, os.fstat(fd))              # a re-run does not open it again
        access = sf.acl_read(fd, "system.posix_acl_access", 0)
        assert access[(sf.USER, 33)] & access[(sf.MASK, sf.NO_ID)] == 0
    finally:
        os.close(fd)
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert sf.grant(fd, 33, 5, os.fstat(fd), default=True)
    finally:
        os.close(fd)
    private = tmp_path / "private.txt"
    private.write_text("x")
    os.chmod(private, 0o600)
    fd = os.open(private, os.O_RDONLY)
    try:
        assert not sf.grant(fd, 33, 4, os.fstat(fd))
    finally:
        os.close(fd)
