"""Restoring a backup onto a host where the site is provisioned: whole, or some parts, or to a point in time.

Everything loads into staging first (the staging database pf_stage_SITE, a root-only staging folder), every
part's sha256 and size are checked against the manifest and every table's rows, and only then is it swapped
in (one atomic RENAME TABLE; folder renames). A broken part leaves the live site as it was.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterable, Optional

from fabric import Connection

from pressfleet.backup import binlogs, catalog
from pressfleet.backup.database import drop_database, mark_restore, swap_tables
from pressfleet.backup.dumpinfo import compare_rows, parse_counts
from pressfleet.backup.index import WEBROOT, Entry, compare_tree, nul_list, select, top_level
from pressfleet.backup.manifest import BackupManifest
from pressfleet.backup.parts import BrokenPart, open_part, read_index
from pressfleet.backup.remote import make_staging, script, tree_listing
from pressfleet.backup.streams import pipe_to_remote
from pressfleet.fleet import dbnames
from pressfleet.fleet.siteconfig import SiteConfig
from pressfleet.ssh import pagecache, redisacl
from pressfleet.ssh.remote import RemoteError, run
from pressfleet.storage.base import ObjectStore
from pressfleet.validate import InvalidInput

PARTS = ("database", "uploads", "themes", "plugins", "webroot", "files", "config")
FILE_PARTS = {"uploads": "wp-content/uploads", "themes": "wp-content/themes", "plugins": "wp-content/plugins",
              "files": "wp-content", "webroot": WEBROOT}  # files: wp-content and the web root's own files


def load_database(conn: Connection, store: ObjectStore, manifest: BackupManifest, secret: Optional[str],
                  into: str) -> dict[str, int]:
    """Load the backup's database into `into` (created empty): the newest dump of its chain, then the binary
    logs of every later increment; check each part and, at the end, every table's rows."""
    dbnames.check_droppable(into, dbnames.protected_databases())  # restore_db.sh drops and re-creates it
    chain = catalog.chain(store, manifest.site, manifest, secret=secret)
    base = max(i for i, m in enumerate(chain) if m.database_from == "dump")
    try:
        with open_part(store, chain[base], "database", secret) as plain:
            pipe_to_remote(conn, ["bash", "-c", script("restore_db.sh"), "bash", into], plain)
        for member in chain[base + 1:]:
            binlogs.replay_increment(conn, store, member, secret, into)
    except BaseException:
        drop_database(conn, into)
        raise
    counts = parse_counts(run(conn, ["bash", "-c", script("db_counts.sh"), "bash", into]).stdout)
    problems = compare_rows(manifest.table_rows, counts, f"the restored copy of backup {manifest.backup_id!r}")
    if problems:
        drop_database(conn, into)
        raise BrokenPart("part 'database' restored with the wrong rows: " + "; ".join(problems[:5]))
    return counts


def extract_files(conn: Connection, store: ObjectStore, chain: list[BackupManifest], wanted: list[Entry],
                  secret: Optional[str], staging: str) -> list[str]:
    """Extract the `wanted` entries into `staging`/tree, each from the archive of the chain member that
    holds it (oldest first). STAGING is a root-only folder from make_staging: nothing else writes there,
    and after each archive every link in the tree must be one the index lists (restore_extract.sh), so
    no later archive is written through a link."""
    tree = f"{staging}/tree"
    links = nul_list(e.path for e in wanted if e.type == "l")
    run(conn, ["sh", "-c", 'umask 077 && cat > "$1"', "sh", f"{staging}/links"], stdin=links)
    used = []
    for member in chain:
        members = [e.path for e in wanted if e.holder == member.backup_id]
        if not members:
            continue
        run(conn, ["sh", "-c", 'umask 077 && cat > "$1"', "sh", f"{staging}/members"], stdin=nul_list(members))
        with open_part(store, member, "files", secret) as plain:
            pipe_to_remote(conn, ["bash", "-c", script("restore_extract.sh"), "bash", tree, f"{staging}/members",
                                  f"{staging}/links"], plain)
        used.append(member.backup_id)
    run(conn, ["mkdir", "-p", "--", tree])
    return used


def check_staged(conn: Connection, tree: str, wanted: list[Entry], backup_id: str, *, hashes: bool) -> int:
    """Every wanted entry is in TREE with its type and size (and, with HASHES, its sha256) as the backup's
    index says; raises BrokenPart naming the first few that are not. Returns how many files were hashed."""
    found = tree_listing(conn, tree, hashes)
    extra = ("wp-content",) if hashes else ()
    problems = compare_tree(wanted, found, extra_under=extra)
    if problems:
        raise BrokenPart(f"part 'files' of backup {backup_id!r} did not restore as its index says: "
                         + "; ".join(problems[:5]) + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""))
    return sum(1 for e in wanted if e.type == "f" and e.sha256)


def finish_files(conn: Connection, base: str, tree: str, wanted: list[Entry], subdirs: list[str]) -> str:
    """Swap the restored SUBDIRS of TREE into BASE (WEBROOT: each of the web root's own names the backup
    holds, one by one; core and anything else at the web root stay as they are)."""
    names: list[str] = []
    for sub in subdirs:
        names += top_level(select(wanted, (WEBROOT,))) if sub == WEBROOT else [sub]
    return run(conn, ["bash", "-c", script("restore_files_finish.sh"), "bash", base, tree, *names],
               stdin=nul_list(e.path for e in wanted)).stdout.strip()


def parse_parts(parts: Iterable[str]) -> tuple[bool, list[str], list[str]]:
    """(database, tables, file subdirs) from parts such as database, uploads, themes, plugins, files,
    config, table:wp_posts. Refuses unknown parts before anything runs."""
    database, tables, subdirs = False, [], []
    for raw in parts:
        part = str(raw).strip()
        if part.startswith("table:"):
            table = part[len("table:"):]
            if not table or any(c in table for c in "`\n\0/") or len(table) > 64:
                raise InvalidInput(f"{part!r} does not name a table (table:wp_posts)")
            tables.append(table)
        elif part == "database":
            database = True
        elif part == "files":
            subdirs += ["wp-content", WEBROOT]
        elif part in FILE_PARTS:
            subdirs.append(FILE_PARTS[part])
        elif part == "config":
            raise InvalidInput("the config part (vhost, pool, wp-config) is kept for reference; provisioning renders "
                               "those files, so restore it by hand from the archive if you need it")
        else:
            raise InvalidInput(f"unknown part {part!r}: use database, files, uploads, themes, plugins, webroot "
                               "or table:NAME")
    if "wp-content" in subdirs:
        subdirs = ["wp-content"] + ([WEBROOT] if WEBROOT in subdirs else [])
    subdirs = list(dict.fromkeys(subdirs))
    if not (database or tables or subdirs):
        raise InvalidInput("nothing to restore: name at least one part")
    return database, tables, subdirs


def split_subsites(parts: Iterable[str]) -> tuple[list[str], list[int]]:
    """(the other parts, the blog ids of `subsite:N` parts): one network subsite alone is its tables
    (`wp_N_...`) and its uploads (wp-content/uploads/sites/N). The main site (1) is the network's database."""
    rest, ids = [], []
    for raw in parts:
        part = str(raw).strip()
        if not part.startswith("subsite:"):
            rest.append(part)
            continue
        number = part[len("subsite:"):]
        if not number.isdigit() or not 2 <= int(number) <= 10**9:
            raise InvalidInput(f"{part!r} does not name a subsite: subsite:N with its blog id N (2 or more; the main "
                               "site is the network's database part)")
        ids.append(int(number))
    return rest, list(dict.fromkeys(ids))


def subsite_scope(site: SiteConfig, blog_ids: list[int]) -> tuple[tuple[str, ...], list[str]]:
    """(table prefixes, upload folders) of the subsites BLOG_IDS of the network SITE."""
    if blog_ids and not site.multisite:
        raise InvalidInput(f"site {site.name} is not a network: it has no subsites to restore alone")
    return (tuple(f"{site.table_prefix}{n}_" for n in blog_ids),
            [f"wp-content/uploads/sites/{n}" for n in blog_ids])


@dataclass
class RestoreResult:
    backup_id: str
    restored: list[str]
    seconds: float
    rows: dict[str, int] = field(default_factory=dict)
    chain: list[str] = field(default_factory=list)
    binlog_events_until: Optional[str] = None


def flush_caches(conn: Connection, site: SiteConfig) -> None:
    """After a database restore: cached pages and objects describe the old content (the one call site of the
    cache flush). Only the site's own go: its pages in nginx's shared cache (pressfleet.ssh.pagecache) and its
    Redis keys (`<site>:*`, pressfleet.ssh.redisacl); other sites keep theirs."""
    try:
        pagecache.purge_site_pages(conn, list(site.server_names))
    except RemoteError:  # as before: a cache that cannot be purged (a linked folder) does not undo the restore
        pass
    try:
        redisacl.flush_site_keys(conn, site.name, database=site.redis_database)
    except RemoteError:  # no Redis on this host (or it is down): there is no object cache to flush
        pass


def restore(conn: Connection, site: SiteConfig, store: ObjectStore, manifest: BackupManifest,
            secret: Optional[str], parts: Iterable[str] = ("database", "files"),
            until: Optional[datetime] = None) -> RestoreResult:
    """Restore parts of a backup onto a host where the site is provisioned (same host or another).

    With `until`, the binary logs that roll the database forward are staged (and their chain checked)
    before anything else happens: a gap or logs that stop short are refused with nothing changed.
    Files are extracted into a root-only staging folder and checked against the index (type and size)
    before they are swapped in. An in-place database restore is recorded on the database server first,
    so the next backup is a full one."""
    parts, blog_ids = split_subsites(parts)
    prefixes, subsite_dirs = subsite_scope(site, blog_ids)
    database, tables, subdirs = parse_parts(parts) if parts or not blog_ids else (False, [], [])
    if "wp-content" not in subdirs:
        subdirs += [d for d in subsite_dirs if not any(d.startswith(s + "/") for s in subdirs)]
    t0 = time.monotonic()
    chain = catalog.chain(store, site.name, manifest, secret=secret)
    restored: list[str] = []
    rows: dict[str, int] = {}
    staging_db, _ = dbnames.staging_names(site.db_name)
    logs: Optional[binlogs.StagedLogs] = None
    staging: Optional[str] = None
    try:
        if until is not None and (database or tables or prefixes):
            logs = binlogs.stage_binlogs(conn, store, site, manifest, secret, until)
        if subsite_dirs and "wp-content" not in subdirs:
            # a subsite's uploads the backup does not hold (none yet then) stay as they are: swapped for an empty
            # folder, root would own it and the subsite could no longer upload
            index = read_index(store, manifest, secret)
            held = {d for d in subsite_dirs if select(index, (d,))}
            subdirs = [d for d in subdirs if d not in subsite_dirs or d in held]
            if held:  # their parent folder is the site's own, made as the site's user (root makes no folder there)
                run(conn, ["runuser", "-u", site.user, "--", "mkdir", "-p", "--", f"{site.uploads_dir}/sites"])
        if subdirs:  # files first: the slow part, and nothing live changes until every part checked out
            wanted = select(read_index(store, manifest, secret), tuple(subdirs))
            need = sum(e.size for e in wanted if e.type == "f")
            staging = make_staging(conn, site.home, "pfrestore", need + need // 10)
            extract_files(conn, store, chain, wanted, secret, staging)
            check_staged(conn, f"{staging}/tree", wanted, manifest.backup_id, hashes=False)
        if database or tables or prefixes:
            rows = load_database(conn, store, manifest, secret, staging_db)
            if logs is not None:
                try:
                    binlogs.replay_staged(conn, site, manifest, logs, staging_db, until)
                except BaseException:
                    drop_database(conn, staging_db)
                    raise
            swap = list(rows) if database else tables + [t for t in rows if t.startswith(prefixes)]
            absent = [p for p in prefixes if not any(t.startswith(p) for t in rows)]
            if absent and not database:
                drop_database(conn, staging_db)
                raise InvalidInput(f"backup {manifest.backup_id!r} holds no tables of subsite "
                                   f"{absent[0][len(site.table_prefix):-1]} ({absent[0]}...)")
            missing = [t for t in swap if t not in rows]
            if missing:
                drop_database(conn, staging_db)
                raise InvalidInput(f"backup {manifest.backup_id!r} has no table {missing[0]!r}")
            mark_restore(conn, site.db_name, manifest.backup_id)  # before the swap: the next backup is full
            swap_tables(conn, site.db_name, staging_db, swap, all_tables=database)  # drops staging afterwards
            restored += ["database"] if database else [f"table:{t}" for t in tables]
            restored += [f"subsite:{n} ({sum(1 for t in swap if t.startswith(p))} tables)"
                         for n, p in zip(blog_ids, prefixes) if not database]
        if subdirs:
            finish_files(conn, site.web_root, f"{staging}/tree", wanted, subdirs)
            from pressfleet.ssh.converge import ensure_webread  # nginx reads restored files through ACLs too (tasks.nginx)
            ensure_webread(conn, "www-data", site.home, site.web_root)
            restored += ["webroot" if s == WEBROOT else s for s in subdirs]
    finally:
        for folder in (staging, logs.folder if logs else None):
            if folder:
                run(conn, ["rm", "-rf", "--", folder], check=False)
    if database or prefixes:
        flush_caches(conn, site)
    return RestoreResult(manifest.backup_id, restored, round(time.monotonic() - t0, 2), rows,
                         [m.backup_id for m in chain], until.isoformat() if until else None)

