"""Two sites on one host: what pressfleet stores for site A (backups, incremental database parts, shipped binary
logs) holds none of site B's rows, and a point-in-time recovery of A from that per-site stream still works.

Runs on the session's shared host (tests/lab/conftest.py: `.one` is A, `.two` is B, one MariaDB server)."""

from __future__ import annotations

import io
import secrets
import time
from datetime import UTC, datetime

import pytest
import zstandard

from pressfleet.backup import catalog
from pressfleet.ssh.remote import run
from tests.conftest import connect_lab

pytestmark = pytest.mark.lab


def sql(host, db: str, statement: str) -> str:
    with connect_lab(host) as conn:
        return run(conn, ["mariadb", "--batch", "--skip-column-names", db], stdin=statement).stdout.strip()


def plain(data: bytes) -> bytes:
    """An object's bytes, zstd expanded (every part and shipped log is zstd; records and manifests are JSON)."""
    if data[:4] != b"\x28\xb5\x2f\xfd":
        return data
    return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True).read()


def test_site_a_storage_never_holds_site_b_rows_and_a_point_in_time_recovery_of_a_works(
        shared_host, prefect_harness, tmp_path):
    from blocks.storage import LocalStorage
    from flows.backup_site import backup_site
    from flows.restore_site import restore_site
    from flows.ship_binlogs import ship_binlogs

    host, a, b = shared_host.host, shared_host.one, shared_host.two
    db_a, db_b = a.config.db_name, b.config.db_name
    assert db_a != db_b
    folder = tmp_path / "a-backups"
    folder.mkdir()
    storage = LocalStorage(path=str(folder), encryption="none")  # plaintext: the grep reads what is stored
    marker = "pfB" + secrets.token_hex(8)

    def b_writes(n: int) -> None:  # B's rows, in B's own tables and in WordPress's, between A's events
        sql(host, db_b, "CREATE TABLE IF NOT EXISTS pf_bmark (id INT AUTO_INCREMENT PRIMARY KEY, note TEXT);"
                        f"INSERT INTO pf_bmark (note) VALUES ('{marker}-{n}');"
                        "INSERT INTO wp_options (option_name, option_value, autoload) "
                        f"VALUES ('pf_bmark_{n}', '{marker}-opt-{n}', 'no');"
                        f"UPDATE wp_posts SET post_content = CONCAT(post_content, ' {marker}-post-{n}') WHERE ID = 1;")

    sql(host, db_a, "CREATE TABLE IF NOT EXISTS pf_pitr (id INT PRIMARY KEY, note TEXT); DELETE FROM pf_pitr;")
    b_writes(1)
    [full] = backup_site(site=a.site, storage=storage, full=True)
    sql(host, db_a, "INSERT INTO pf_pitr VALUES (1, 'before');")
    b_writes(2)
    time.sleep(1.5)
    chosen = datetime.now(UTC)
    time.sleep(1.5)
    sql(host, db_a, "INSERT INTO pf_pitr VALUES (2, 'after'); UPDATE pf_pitr SET note = 'after' WHERE id = 1;")
    b_writes(3)
    [inc] = backup_site(site=a.site, storage=storage)  # its database part: the binary logs since the full one
    assert inc["kind"] == "incremental", inc["notes"]
    [shipped] = ship_binlogs(site=a.site, storage=storage)
    assert shipped["shipped"]

    # The server's own logs do hold B's rows (so a raw copy would carry them) ...
    with connect_lab(host) as conn:
        raw = run(conn, ["sh", "-c", 'cat /var/lib/mysql/mariadb-bin.[0-9]* | grep -c -a -- "$1" || true', "sh",
                         marker]).stdout.strip()
    assert int(raw) > 0
    # ... and nothing in A's storage does: every object, expanded.
    store = storage.store()
    objects = store.list("")
    kinds = {o.key.split("/")[1] for o in objects}
    assert {"backups", "binlogs"} <= kinds, kinds
    keys = {o.key for o in objects}
    for backup in (full, inc):  # both database parts (a dump, then the logs since it) are among what is grepped
        assert catalog.part_key(a.config.name, backup["backup"], "database", False) in keys
    found = {o.key for o in objects if marker.encode() in plain(store.get_bytes(o.key))}
    assert found == set()
    logs = [o.key for o in objects if "/binlogs/" in o.key and o.key.endswith(".zst")]
    assert logs
    # The decoded row images (mariadb-binlog on the host, of each stored log) carry A's rows, never B's.
    decoded = ""
    with connect_lab(host) as conn:
        for key in logs:
            decoded += run(conn, ["sh", "-c", 'f=$(mktemp) && cat > "$f" && mariadb-binlog --verify-binlog-checksum '
                                  '--base64-output=decode-rows --verbose "$f"; s=$?; rm -f "$f"; exit $s'],
                           stdin=plain(store.get_bytes(key))).stdout
    assert "'after'" in decoded and f"`{db_a}`.`pf_pitr`" in decoded
    assert marker not in decoded and f"`{db_b}`." not in decoded

    # Point-in-time recovery of A from its own stream: the state at `chosen`; B untouched.
    b_before = sql(host, db_b, "SELECT COUNT(*) FROM pf_bmark")
    for site in (a, b):  # both home pages in nginx's shared page cache
        site.curl("/")
        assert cache_status(site) == "HIT"
    result = restore_site(site=a.site, storage=storage, parts=["database"], point_in_time=chosen)
    # A's cached pages describe the old content and went; B's are B's and stayed (a restore emptied every site's)
    assert cache_status(b) == "HIT"
    assert cache_status(a) == "MISS"
    assert result["until"] and result["backup"] == full["backup"]
    assert sql(host, db_a, "SELECT id, note FROM pf_pitr ORDER BY id").splitlines() == ["1\tbefore"]
    assert sql(host, db_b, "SELECT COUNT(*) FROM pf_bmark") == b_before == "3"
    sql(host, db_a, "DROP TABLE pf_pitr;")
    sql(host, db_b, "DROP TABLE pf_bmark; DELETE FROM wp_options WHERE option_name LIKE 'pf\\_bmark\\_%';")


def cache_status(site) -> str | None:
    """The X-Cache-Status of the site's home page (nginx's FastCGI cache)."""
    from tests.lab.test_provision import headers_of

    return headers_of(site.curl("/", "-D", "-", "-o", "/dev/null").stdout)[1].get("x-cache-status")
