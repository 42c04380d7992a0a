"""Staging databases never collide with a site's (issue 9 item 5), on the session's provisioned lab host.

The issue: a restore of `shop` ran `DROP DATABASE IF EXISTS shop_pfold`, which may be another site's live
database. Restores now stage in `pf_stage_NAME` / `pf_old_NAME` (no site may be named `pf_...`), and before any
DROP both pressfleet and the host refuse a database a site uses.
"""

from __future__ import annotations

import pytest

from pressfleet.ssh.remote import run
from pressfleet.validate import InvalidInput
from tests.conftest import connect_lab, make_site

pytestmark = pytest.mark.lab

PROBE_HOME = "/var/www/hbprobe"


def _databases(conn) -> set[str]:
    return set(run(conn, ["mariadb", "--batch", "--skip-column-names", "-e", "SHOW DATABASES"]).stdout.split())


def test_a_restore_leaves_databases_named_like_the_old_staging_alone(provisioned, prefect_harness, tmp_path):
    from blocks.storage import LocalStorage
    from flows.backup_site import backup_site
    from flows.restore_site import restore_site

    site = make_site(server=provisioned.server)
    folder = tmp_path / "backups"
    folder.mkdir()
    storage = LocalStorage(path=str(folder), encryption="none")
    neighbours = ("blog_pfold", "blog_pfstage")  # what a restore of blog used to drop
    with connect_lab(provisioned.host) as conn:
        run(conn, ["mariadb"], stdin="".join(
            f"CREATE DATABASE IF NOT EXISTS {d}; CREATE TABLE IF NOT EXISTS {d}.keep (id INT); "
            f"INSERT INTO {d}.keep VALUES (7);\n" for d in neighbours))
    try:
        backup_site(site=site, storage=storage, full=True)
        result = restore_site(site=site, storage=storage, parts=["database"])
        assert result["restored"] == ["database"]
        with connect_lab(provisioned.host) as conn:
            left = _databases(conn)
            assert set(neighbours) <= left, left
            for d in neighbours:
                assert run(conn, ["mariadb", "--batch", "--skip-column-names", "-e",
                                  f"SELECT id FROM {d}.keep"]).stdout.split() == ["7"]
            assert not {"pf_stage_blog", "pf_old_blog"} & left  # the restore's own staging is gone
    finally:
        with connect_lab(provisioned.host) as conn:
            run(conn, ["mariadb"], stdin="".join(f"DROP DATABASE IF EXISTS {d};\n" for d in neighbours))


def test_no_drop_of_a_database_a_site_uses(provisioned, prefect_harness):
    from pressfleet.backup.database import drop_database
    from pressfleet.backup.remote import script

    with connect_lab(provisioned.host) as conn:
        with pytest.raises(InvalidInput, match="refusing to drop database 'blog'"):
            drop_database(conn, "blog")  # refused before anything runs on the host

        def host_drop(name: str):
            return run(conn, ["bash", "-c", script("db_drop.sh"), "bash", name], check=False)

        refused = host_drop("blog")  # the host's own check, whatever the caller checked
        assert refused.exited == 2 and "not a pressfleet staging database" in refused.stderr
        assert "blog" in _databases(conn)
        # A pf_ name that a site's wp-config.php on the host names is a live database too.
        run(conn, ["mariadb", "-e", "CREATE DATABASE IF NOT EXISTS pf_stage_hbprobe"])
        run(conn, ["sh", "-c", 'mkdir -p "$1" && printf "%s\\n" "define( '"'"'DB_NAME'"'"', '"'"'pf_stage_hbprobe'"'"' );" '
                   '> "$1/wp-config.php"', "sh", PROBE_HOME])
        try:
            used = host_drop("pf_stage_hbprobe")
            assert used.exited == 2 and "wp-config.php on this host uses it" in used.stderr
            assert "pf_stage_hbprobe" in _databases(conn)
        finally:
            run(conn, ["rm", "-rf", "--", PROBE_HOME])
        assert host_drop("pf_stage_hbprobe").ok and "pf_stage_hbprobe" not in _databases(conn)
