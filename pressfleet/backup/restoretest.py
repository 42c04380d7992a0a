"""The restore-test: a backup restored into a scratch database and folder, checked, and booted."""

from __future__ import annotations

import contextlib
import secrets
import time
from dataclasses import dataclass
from typing import Optional

from fabric import Connection

from pressfleet.backup import catalog, sql
from pressfleet.backup.database import drop_database
from pressfleet.backup.index import WEBROOT
from pressfleet.backup.manifest import BackupManifest
from pressfleet.backup.parts import BrokenPart, open_part, read_index
from pressfleet.backup.remote import make_staging, script
from pressfleet.backup.restore import check_staged, extract_files, finish_files, load_database
from pressfleet.backup.streams import drain
from pressfleet.fleet import dbnames
from pressfleet.fleet.siteconfig import SiteConfig, WpSalts
from pressfleet.render import configs as render
from pressfleet.ssh.remote import run
from pressfleet.storage.base import ObjectStore


SCRATCH_ROOT = "/srv/pressfleet-restore-test"


@dataclass
class RestoreTestResult:
    backup_id: str
    passed: bool
    seconds: float
    checks: list[str]
    failure: Optional[str] = None
    home_status: Optional[int] = None
    home_seconds: Optional[float] = None


def restore_test(conn: Connection, site: SiteConfig, store: ObjectStore, manifest: BackupManifest,
                 secret: Optional[str], *, release_url: str, release_sha256: Optional[str],
                 keep: bool = False) -> RestoreTestResult:
    """Restore a backup into a scratch database and folder on this host and prove it works.

    Checks every part's sha256 and size, every table's rows, and that WordPress boots from the copy
    (a 200 home page rendered by a theme, served by PHP's built-in server on loopback). The scratch
    database, its user and folder are removed afterwards unless `keep`. Raises BrokenPart naming the
    broken part; other failures raise as they are.
    """
    t0 = time.monotonic()
    tag = secrets.token_hex(3)
    scratch = dbnames.scratch_name(tag)
    password = secrets.token_urlsafe(24)
    base = f"{SCRATCH_ROOT}/{site.name}-{tag}"
    port = 20000 + secrets.randbelow(20000)
    checks: list[str] = []
    runner_made = False  # the copy runs as a throwaway user of its own, never www-data (which reads no site)
    try:
        run(conn, ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
                   "--shell", "/usr/sbin/nologin", "--", scratch])
        runner_made = True
        run(conn, ["install", "-d", "-m", "755", SCRATCH_ROOT])
        run(conn, ["sh", "-c", script("install_wordpress_release.sh"), "sh", scratch, base, release_url,
                   release_sha256 or "", "uploads"], timeout=900)
        core = run(conn, ["sh", "-c", "sed -n \"s/^\\$wp_version = '\\(.*\\)';/\\1/p\" \"$1\"", "sh",
                          f"{base}/htdocs/wp-includes/version.php"]).stdout.strip()
        if core != manifest.wordpress_version:
            checks.append(f"note: WordPress core {core} from the release archive, the backup was taken on "
                          f"{manifest.wordpress_version}")
        chain = catalog.chain(store, site.name, manifest, secret=secret)
        wanted = read_index(store, manifest, secret)
        need = sum(e.size for e in wanted if e.type == "f")
        stage = make_staging(conn, base, "restored", need + need // 10)
        used = extract_files(conn, store, chain, wanted, secret, stage)
        finish_files(conn, f"{base}/htdocs", f"{stage}/tree", wanted, ["wp-content", WEBROOT])
        run(conn, ["rm", "-rf", "--", stage])
        # every entry of the index is in the copy, with its type, size and (files) sha256
        hashed = check_staged(conn, f"{base}/htdocs", wanted, manifest.backup_id, hashes=True)
        # The archive keeps the site's owners (root and the site's group); the copy runs as its own user.
        run(conn, ["chown", "-R", "--no-dereference", f"root:{scratch}", "--", f"{base}/htdocs/wp-content"])
        run(conn, ["chmod", "-R", "g+rX,o-rwx", "--", f"{base}/htdocs/wp-content"])
        checks.append(f"files: {len(wanted)} entries restored from {len(used)} archive(s) "
                      f"({', '.join(used)}), each part's sha256 and size match; every entry of the index is in "
                      f"the copy with its type and size, {hashed} files with their sha256")
        rows = load_database(conn, store, manifest, secret, scratch)
        checks.append(f"database: {len(rows)} tables, {sum(rows.values())} rows, all as the manifest says")
        for name in ("config", "index"):
            if manifest.part(name):
                with open_part(store, manifest, name, secret) as plain:
                    drain(plain)
        checks.append("config and index parts: sha256 and size match")
        run(conn, sql.CLIENT, stdin=sql.create_scratch_user(scratch, password))  # the password: stdin only
        config = render.render_restore_test_wp_config(
            site, db_name=scratch, db_user=scratch, db_password=password, salts=WpSalts.generate(),
            home_url=f"http://127.0.0.1:{port}", abspath=f"{base}/htdocs")
        run(conn, ["sh", "-c", 'umask 027 && cat > "$1" && chgrp "$2" "$1"', "sh", f"{base}/wp-config.php", scratch],
            stdin=config)
        booted = run(conn, ["sh", "-c", script("restore_test_boot.sh"), "sh", f"{base}/htdocs", str(port), scratch],
                     timeout=120).stdout.split()
        status, seconds, size, marker = int(booted[0]), float(booted[1]), int(booted[2]), booted[3] == "1"
        if status != 200 or not marker:
            raise BrokenPart(f"the restored site answered {status} ({size} bytes) on its home page"
                             f"{'' if marker else ', not a page WordPress rendered'}: the backup does not boot")
        checks.append(f"WordPress boots from the copy: home page 200 in {seconds * 1000:.0f} ms ({size} bytes)")
        return RestoreTestResult(manifest.backup_id, True, round(time.monotonic() - t0, 2), checks, None,
                                 status, seconds)
    finally:
        if not keep:
            run(conn, sql.CLIENT, stdin=sql.drop_scratch_user(scratch), check=False)
            with contextlib.suppress(Exception):  # cleanup: the run's own outcome is what is reported
                drop_database(conn, scratch)
            run(conn, ["rm", "-rf", "--", base], check=False)
        if runner_made and not keep:
            run(conn, ["userdel", "--", scratch], check=False)

