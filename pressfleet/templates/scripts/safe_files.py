"""pressfleet's file changes on a host, run as root by pressfleet.ssh.converge (constant text; arguments in argv).

Root never follows a link anyone could have placed: every folder on a path is opened one name at a time with
O_NOFOLLOW, starting from /, and every change happens inside that folder's descriptor: new content goes to a fresh
name made with O_EXCL and is renamed into place, the previous file is kept as `<name>.pressfleet-last-good` by a
hard link to it (a link made by name never follows a symlink), markers are fresh files renamed into place. Swapping a
name for a link mid-run redirects nothing. In a folder that a user other than root can change (a site's own
wp-content when PHP may write everywhere), a managed file and its side files must be plain files with one link (no
symlink, no second name of another file), or nothing changes and the run stops with one sentence naming the file.

Usage: python3 -c "$(cat this)" MODE ARG...
  state PATH...           print `path<TAB>sha256<TAB>mode<TAB>owner<TAB>group` or `path<TAB>-` per file
  install PATH...         a tar on stdin holds each PATH's new content (name without the leading /)
  restore PATH... / commit PATH...
  links LINK TARGET...    symlinks, replaced atomically when they differ; prints the links changed
  absent PATH...          remove these files or links; prints those removed
  check PATH...           refuse unless every folder on the way is root's own and the file is no link
  webread USER HOME ROOT  USER (nginx) may pass HOME and read everything under ROOT, new files included
  swapin PARENT NAME STAGED
                          folder STAGED (in a folder only root can change) takes the place of PARENT/NAME in one
                          rename (an exchange when NAME exists: a link there is swapped out, never followed); the
                          old entry is left at STAGED; prints `replaced` or `added`
Exit status 3 with `refused: <sentence>` on stderr when a path is unsafe.
"""

import base64
import errno
import grp
import hashlib
import os
import pwd
import secrets
import stat
import struct
import sys
import tarfile

SIDES = (".pressfleet-new", ".pressfleet-last-good", ".pressfleet-absent")
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class Refused(Exception):
    pass


def others_can_change(st):
    """A folder whose entries someone other than root can rename or replace."""
    return st.st_uid != 0 or st.st_mode & 0o002 or (st.st_mode & 0o020 and st.st_gid != 0)


def open_dir(path, create=False):
    """(descriptor, untrusted) of folder PATH walked from / without following links; None if it is missing."""
    fd = os.open("/", DIR_FLAGS)
    untrusted = bool(others_can_change(os.fstat(fd)))
    walked = ""
    for part in [p for p in path.split("/") if p]:
        walked += "/" + part
        try:
            try:
                nfd = os.open(part, DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    os.close(fd)
                    return None
                try:
                    os.mkdir(part, 0o755, dir_fd=fd)
                except FileExistsError:
                    pass
                nfd = os.open(part, DIR_FLAGS, dir_fd=fd)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise Refused(f"{walked} is a symbolic link or not a folder: pressfleet never follows a link "
                              f"on the way to {path}, so nothing was changed") from None
            raise
        os.close(fd)
        fd = nfd
        untrusted = untrusted or bool(others_can_change(os.fstat(fd)))
    return fd, untrusted


def entry(fd, name):
    try:
        return os.stat(name, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def split(path):
    folder, name = os.path.split(path)
    return folder or "/", name


def vet(path):
    """Refuse PATH when it or one of its side files could redirect root (see the module's docstring)."""
    folder, name = split(path)
    opened = open_dir(folder)
    if opened is None:
        return
    fd, untrusted = opened
    try:
        for n in (name, *(name + s for s in SIDES)):
            st = entry(fd, n)
            if st is None:
                continue
            full = f"{folder.rstrip('/')}/{n}"
            if stat.S_ISLNK(st.st_mode) and (untrusted or n != name):
                raise Refused(f"{full} is a symbolic link: pressfleet never writes through a link a site's user "
                              "could have placed, so nothing was changed (remove the link and run again)")
            if not stat.S_ISREG(st.st_mode) and not stat.S_ISLNK(st.st_mode):
                raise Refused(f"{full} is not a regular file, so nothing was changed")
            # Whoever can change the folder can change these files anyway (redis.conf in /etc/redis, a site's
            # drop-in in its own wp-content): they are only ever replaced by rename, never written through. A
            # second hard link could be another file's inode: that is refused.
            if untrusted and st.st_nlink != 1:
                raise Refused(f"{full} has other hard links, in {folder}, a folder a user other than root can "
                              "change: pressfleet does not touch it there, so nothing was changed "
                              "(remove it and run again)")
    finally:
        os.close(fd)


def owner_names(st):
    try:
        user = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        user = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return user, group


def with_regular_file(path, use):
    """USE(open fd) on PATH when it is a regular file reached without following any link; None otherwise."""
    vet(path)
    folder, name = split(path)
    opened = open_dir(folder)
    if opened is None:
        return None
    fd, _ = opened
    try:
        st = entry(fd, name)
        if st is None or not stat.S_ISREG(st.st_mode):
            return None
        f = os.open(name, FILE_FLAGS, dir_fd=fd)
        try:
            return use(f)
        finally:
            os.close(f)
    finally:
        os.close(fd)


def _state_line(f):
    fst = os.fstat(f)
    digest = hashlib.sha256()
    while chunk := os.read(f, 1 << 20):
        digest.update(chunk)
    user, group = owner_names(fst)
    return f"{digest.hexdigest()}\t{stat.S_IMODE(fst.st_mode):o}\t{user}\t{group}"


def state(paths):
    for path in paths:
        line = with_regular_file(path, _state_line)
        print(f"{path}\t{line or '-'}")


def fresh(fd, name):
    """A new, empty file of our own beside NAME (O_EXCL: never an existing name, never a link)."""
    while True:
        tmp = f".{name}.pressfleet-{secrets.token_hex(6)}"
        try:
            return tmp, os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                                dir_fd=fd)
        except FileExistsError:
            continue


def unshare(f):
    """A managed file has exactly its mode: drop any ACL it inherited from its folder's default ACL."""
    try:
        os.removexattr(f, "system.posix_acl_access")
    except OSError as exc:
        if exc.errno not in (errno.ENODATA, errno.EOPNOTSUPP):
            raise


def put_marker(fd, name):
    tmp, f = fresh(fd, name)
    os.close(f)
    os.rename(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)


def keep_as(fd, name, kept):
    """KEPT becomes a second name of NAME's current inode (whatever it is; a symlink stays a symlink)."""
    while True:
        tmp = f".{name}.pressfleet-{secrets.token_hex(6)}"
        try:
            os.link(name, tmp, src_dir_fd=fd, dst_dir_fd=fd, follow_symlinks=False)
            break
        except FileExistsError:
            continue
    os.rename(tmp, kept, src_dir_fd=fd, dst_dir_fd=fd)


def drop(fd, name):
    try:
        os.unlink(name, dir_fd=fd)
    except FileNotFoundError:
        pass


def install(paths):
    wanted = set(paths)
    for path in paths:
        vet(path)
    contents = {}
    with tarfile.open(fileobj=sys.stdin.buffer, mode="r|") as tar:
        for member in tar:
            path = "/" + member.name
            if path not in wanted or not member.isreg():
                raise Refused(f"the file stream holds {path!r}, which is not one of the files to install")
            contents[path] = (tar.extractfile(member).read(), member.mode & 0o7777, member.uname, member.gname)
    staged = []
    try:
        for path in paths:
            data, mode, user, group = contents[path]
            folder, name = split(path)
            fd, _ = open_dir(folder, create=True)
            tmp, f = fresh(fd, name)
            staged.append((fd, tmp, name))
            unshare(f)
            with os.fdopen(f, "wb") as out:
                out.write(data)
                out.flush()
                os.fchown(out.fileno(), pwd.getpwnam(user).pw_uid, grp.getgrnam(group).gr_gid)
                os.fchmod(out.fileno(), mode)
                os.fsync(out.fileno())
        for fd, tmp, name in staged:
            st = entry(fd, name)
            if st is not None:
                keep_as(fd, name, name + ".pressfleet-last-good")
                drop(fd, name + ".pressfleet-absent")
            else:
                drop(fd, name + ".pressfleet-last-good")
                put_marker(fd, name + ".pressfleet-absent")
            os.rename(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
    except BaseException:
        for fd, tmp, _ in staged:
            drop(fd, tmp)
        raise
    finally:
        for fd, _, _ in staged:
            os.close(fd)


def restore(paths):
    for path in paths:
        folder, name = split(path)
        opened = open_dir(folder)
        if opened is None:
            continue
        fd, untrusted = opened
        try:
            absent, kept = entry(fd, name + ".pressfleet-absent"), entry(fd, name + ".pressfleet-last-good")
            if absent is not None:
                drop(fd, name)
                drop(fd, name + ".pressfleet-absent")
            elif kept is not None:
                if untrusted and (kept.st_nlink != 1 or not stat.S_ISREG(kept.st_mode)):
                    print(f"not restored: {path}'s last good copy is not a file of its own", file=sys.stderr)
                    continue
                if stat.S_ISLNK(kept.st_mode):  # root's own link in root's own folder: put the link back
                    keep_as(fd, name + ".pressfleet-last-good", name)
                    continue
                # A copy, not a second link: the last good file stays a file of its own (one link).
                src = os.open(name + ".pressfleet-last-good", FILE_FLAGS, dir_fd=fd)
                tmp, f = fresh(fd, name)
                try:
                    with os.fdopen(src, "rb") as inp, os.fdopen(f, "wb") as out:
                        st = os.fstat(inp.fileno())
                        while chunk := inp.read(1 << 20):
                            out.write(chunk)
                        out.flush()
                        os.fchown(out.fileno(), st.st_uid, st.st_gid)
                        os.fchmod(out.fileno(), stat.S_IMODE(st.st_mode) & (0o777 if untrusted else 0o7777))
                    os.rename(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
                except BaseException:
                    drop(fd, tmp)
                    raise
        finally:
            os.close(fd)


def commit(paths):
    for path in paths:
        folder, name = split(path)
        opened = open_dir(folder)
        if opened is None:
            continue
        fd, _ = opened
        try:
            st = entry(fd, name + ".pressfleet-absent")
            if st is not None and stat.S_ISREG(st.st_mode):
                drop(fd, name + ".pressfleet-absent")
        finally:
            os.close(fd)


def links(pairs):
    for link, target in zip(pairs[0::2], pairs[1::2]):
        folder, name = split(link)
        opened = open_dir(folder, create=not DRY)
        if opened is None:  # a dry run creates no folder: the link would be new
            print(link)
            continue
        fd, _ = opened
        try:
            st = entry(fd, name)
            if st is not None and stat.S_ISLNK(st.st_mode) and os.readlink(name, dir_fd=fd) == target:
                continue
            if st is not None and stat.S_ISDIR(st.st_mode):
                raise Refused(f"{link} is a folder, not a link, so nothing was changed")
            if DRY:
                print(link)
                continue
            tmp = f".{name}.pressfleet-{secrets.token_hex(6)}"
            os.symlink(target, tmp, dir_fd=fd)
            os.rename(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
            print(link)
        finally:
            os.close(fd)


def absent(paths):
    for path in paths:
        folder, name = split(path)
        opened = open_dir(folder)
        if opened is None:
            continue
        fd, _ = opened
        try:
            st = entry(fd, name)
            if st is not None and not stat.S_ISDIR(st.st_mode):
                if not DRY:
                    os.unlink(name, dir_fd=fd)
                print(path)
        finally:
            os.close(fd)


def check(paths):
    for path in paths:
        folder, name = split(path)
        opened = open_dir(folder)
        if opened is None:
            raise Refused(f"{folder} does not exist")
        fd, untrusted = opened
        try:
            st = entry(fd, name)
            if untrusted:
                raise Refused(f"{folder} can be changed by a user other than root, so pressfleet does not edit {path}")
            if st is not None and stat.S_ISLNK(st.st_mode):
                raise Refused(f"{path} is a symbolic link, so pressfleet does not edit it")
        finally:
            os.close(fd)


# POSIX ACLs as the kernel stores them (system.posix_acl_*): setfacl -R walks by path name, which a site's user
# could redirect mid-walk; os.fwalk keeps descriptors and never follows a link.
ACL_VERSION, USER_OBJ, USER, GROUP_OBJ, GROUP, MASK, OTHER = 2, 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
NO_ID = 0xFFFFFFFF


def acl_read(fd, attr, mode):
    """The ACL entries {(tag, id): perm}; an access ACL never set is the mode's three entries, a default one None."""
    try:
        blob = os.getxattr(fd, attr)
    except OSError as exc:
        if exc.errno != errno.ENODATA:
            raise
        blob = b""
    if not blob:
        if attr.endswith("default"):
            return None
        return {(USER_OBJ, NO_ID): (mode >> 6) & 7, (GROUP_OBJ, NO_ID): (mode >> 3) & 7, (OTHER, NO_ID): mode & 7}
    entries = {}
    for off in range(4, len(blob), 8):
        tag, perm, ident = struct.unpack_from("<HHI", blob, off)
        entries[(tag, ident)] = perm
    return entries


def acl_write(fd, attr, entries):
    if DRY:  # a dry run (mode `webread-dry`) only counts what would change
        return
    named = [k for k in entries if k[0] in (USER, GROUP)]
    if named:
        entries[(MASK, NO_ID)] = entries[(GROUP_OBJ, NO_ID)] | _union(entries[k] for k in named)
    blob = struct.pack("<I", ACL_VERSION) + b"".join(
        struct.pack("<HHI", tag, perm, ident) for (tag, ident), perm in sorted(entries.items()))
    os.setxattr(fd, attr, blob)


def _union(perms):
    out = 0
    for p in perms:
        out |= p
    return out


def grant(fd, uid, perm, st, default=False):
    """Give UID exactly PERM on the open file FD (and, for folders, on what is created in them); True if changed."""
    changed = False
    mode = stat.S_IMODE(st.st_mode)
    access = acl_read(fd, "system.posix_acl_access", mode)
    # A file its owner keeps from the site's group (chmod 600: the group class, the mask once there is an ACL,
    # has no read) stays closed to nginx, as before. (A default ACL overrides the umask: privacy is a chmod.)
    if not default and not access.get((MASK, NO_ID), access[(GROUP_OBJ, NO_ID)]) & 4:
        return False
    entry, mask = access.get((USER, uid)), access.get((MASK, NO_ID), 7)
    if entry is None or entry & mask != perm:  # what counts is the effective permission (entry and mask)
        access[(USER, uid)] = perm
        acl_write(fd, "system.posix_acl_access", access)
        changed = True
    if default:
        current = acl_read(fd, "system.posix_acl_default", mode)
        want = {(USER_OBJ, NO_ID): 7, (USER, uid): perm, (GROUP_OBJ, NO_ID): 5, (OTHER, NO_ID): 0}
        if current is None or any(current.get(k) != v for k, v in want.items()):
            acl_write(fd, "system.posix_acl_default", dict(want))
            changed = True
    return changed


def webread(user, home, root):
    try:
        _webread(user, home, root)
    except OSError as exc:
        if exc.errno != errno.EOPNOTSUPP:
            raise
        raise Refused(f"the file system under {home} has no POSIX ACLs (mount it with acl), so nginx cannot be "
                      "given read access to the site's static files alone") from None


def _webread(user, home, root):
    try:
        uid = pwd.getpwnam(user).pw_uid
    except KeyError:
        if not DRY:
            raise
        print(0)  # a dry run on a host without nginx yet: its user comes with the package
        return
    changed = 0
    opened = open_dir(home)
    if opened is None:  # the site is not installed yet
        print(0)
        return
    fd, _ = opened
    try:
        # wp-config.php lives in HOME: nginx may pass through it to the web root, never list or read it.
        if grant(fd, uid, 1, os.fstat(fd)):
            changed += 1
    finally:
        os.close(fd)
    parent, name = split(root)
    pfd, _ = open_dir(parent)
    try:
        if entry(pfd, name) is None:
            print(0)
            return
        for _dirpath, _dirs, files, dfd in os.fwalk(name, dir_fd=pfd, follow_symlinks=False):
            if grant(dfd, uid, 5, os.fstat(dfd), default=True):
                changed += 1
            for fname in files:
                try:
                    f = os.open(fname, FILE_FLAGS, dir_fd=dfd)
                except OSError:  # a symlink (O_NOFOLLOW), or gone meanwhile: never followed
                    continue
                try:
                    st = os.fstat(f)
                    if stat.S_ISREG(st.st_mode) and grant(f, uid, 4, st):
                        changed += 1
                finally:
                    os.close(f)
    finally:
        os.close(pfd)
    print(changed)


def read(paths):
    """Each regular file's content as `path<TAB>base64` (at most 1 MiB; never through a link), for a dry run's diff."""
    for path in paths:
        data = with_regular_file(path, lambda f: os.read(f, 1 << 20))
        print(f"{path}\t{'-' if data is None else base64.b64encode(data).decode()}")


RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2


def _renameat2(src_fd, src, dst_fd, dst, flags):
    """Linux renameat2(2) (Python's os has no exchange): one atomic step, whatever the names point at."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.renameat2(src_fd, os.fsencode(src), dst_fd, os.fsencode(dst), flags) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def swapin(args):
    parent, name, staged = args
    if "/" in name or name in ("", ".", ".."):
        raise Refused(f"{name!r} is not a folder name")
    sfolder, sname = split(staged)
    opened = open_dir(sfolder)
    if opened is None:
        raise Refused(f"{sfolder} is missing")
    sfd, untrusted = opened
    try:
        if untrusted:
            raise Refused(f"{sfolder} can be changed by a user other than root: nothing was changed")
        st = entry(sfd, sname)
        if st is None or not stat.S_ISDIR(st.st_mode):
            raise Refused(f"{staged} is not a folder")
        popened = open_dir(parent)
        if popened is None:
            raise Refused(f"{parent} is missing: nothing was changed")
        pfd = popened[0]
        try:
            if entry(pfd, name) is None:
                _renameat2(sfd, sname, pfd, name, RENAME_NOREPLACE)
                print("added")
            else:
                _renameat2(sfd, sname, pfd, name, RENAME_EXCHANGE)
                print("replaced")
        finally:
            os.close(pfd)
    finally:
        os.close(sfd)


DRY = False


def main(argv):
    global DRY
    mode, args = argv[1], argv[2:]
    if mode.endswith("-dry"):  # report what would change, change nothing
        DRY, mode = True, mode[: -len("-dry")]
        if mode not in ("links", "absent", "webread"):
            raise Refused(f"{mode} has no dry form")
    for path in args if mode not in ("webread", "swapin") else args[1:] if mode == "webread" else args[::2]:
        if not path.startswith("/") or os.path.normpath(path) != path or "\0" in path:
            raise Refused(f"{path!r} is not an absolute, normalized path")
    {"state": state, "install": install, "restore": restore, "commit": commit, "links": links,
     "absent": absent, "check": check, "read": read, "webread": lambda a: webread(*a), "swapin": swapin}[mode](args)


if __name__ == "__main__":
    try:
        main(sys.argv)
    except Refused as exc:
        print(f"refused: {exc}", file=sys.stderr)
        sys.exit(3)
