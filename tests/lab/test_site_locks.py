"""A lock per site (issue 9, item 21): a second backup of a site started while one runs waits for it.

The site is the session's provisioned WordPress host; storage is a fresh local folder."""

from __future__ import annotations

import time

import pytest

from pressfleet.backup import catalog
from pressfleet.fleet.locks import lock_name
from pressfleet.ssh.remote import run
from tests.conftest import connect_lab, held_by_another_run, in_background, make_site, unreachable_server

pytestmark = pytest.mark.lab


def _artifact_texts(key: str) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    return [str(a.data) for a in found]


def _wait_until_held(name: str, timeout: float = 120.0) -> None:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            try:
                if client.read_global_concurrency_limit_by_name(name).active_slots == 1:
                    return
            except ObjectNotFound:
                pass  # the first run has not created its site's limit yet
            time.sleep(0.05)
    pytest.fail(f"no run took {name} within {timeout:.0f} s")


def test_two_backups_of_one_site_at_once_one_waits_and_both_are_right(provisioned, prefect_harness, tmp_path):
    from blocks.storage import LocalStorage
    from flows.backup_site import backup_site
    from flows.restore_test import restore_test

    folder = tmp_path / "backups"
    folder.mkdir()
    storage = LocalStorage(path=str(folder), encryption="none")  # plaintext on purpose: no key here
    site = make_site(server=provisioned.server)

    big = "/var/www/blog/htdocs/wp-content/uploads/lock-test.bin"  # a full backup that takes a few seconds
    with connect_lab(provisioned.host) as conn:
        run(conn, ["sh", "-c", f"head -c 100000000 /dev/urandom > {big}"])
    try:
        runs = [in_background(lambda: backup_site(site=site, storage=storage))]
        _wait_until_held(lock_name("blog"))  # the first run holds the site: the second starts now
        runs.append(in_background(lambda: backup_site(site=site, storage=storage)))
        for worker, _ in runs:
            worker.join(600)
    finally:
        with connect_lab(provisioned.host) as conn:
            run(conn, ["rm", "-f", big], check=False)
    outcomes = [outcome for _, outcome in runs]
    assert all("result" in o for o in outcomes), [o.get("error") for o in outcomes]
    summaries = sorted((o["result"][0] for o in outcomes), key=lambda s: s["lock_waited_seconds"])
    first, second = summaries
    assert first["backup"] != second["backup"]
    assert first["lock_waited_seconds"] < 1.0 <= second["lock_waited_seconds"]  # one ran, the other waited

    store = storage.store()
    listed = catalog.list_backups(store, "blog")
    assert [e.manifest.backup_id for e in listed] == [first["backup"], second["backup"]]  # both complete
    older, newer = (catalog.load_manifest(store, "blog", s["backup"]) for s in (first, second))
    assert newer.started_at >= older.ended_at  # they did not overlap
    assert (older.kind, older.parent_id) == ("full", None)
    assert (newer.kind, newer.parent_id) == ("incremental", older.backup_id)  # the chain saw the first backup
    assert any(f"backup-site waited {second['lock_waited_seconds']:.1f} s for site 'blog'" in text
               for text in _artifact_texts("backup-site"))

    [proof] = restore_test(site=site, storage=storage, scratch=provisioned.server)
    assert proof["verified"] and proof["backup"] == second["backup"]

    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:  # nothing is left holding the site
        limit = client.read_global_concurrency_limit_by_name(lock_name("blog"))
    assert (limit.limit, limit.active_slots) == (1, 0)


def test_a_run_that_would_wait_too_long_is_refused_and_changes_nothing(prefect_harness, tmp_path, monkeypatch):
    """Another run (a thread here, as a second flow run would be) holds 'blog': backup and prune give up after
    PRESSFLEET_SITE_LOCK_WAIT with one sentence, before anything reaches the host (a closed port here) or storage."""
    from blocks.site import WordPressSite
    from blocks.storage import LocalStorage
    from flows.backup_site import backup_site
    from flows.prune_backups import prune_backups
    from pressfleet.fleet.locks import SiteBusy

    server = unreachable_server()
    site = WordPressSite(name="blog", domain="blog.lab.test", admin_email="admin@lab.test", server=server)
    folder = tmp_path / "backups"
    folder.mkdir()
    storage = LocalStorage(path=str(folder), encryption="none")
    monkeypatch.setenv("PRESSFLEET_SITE_LOCK_WAIT", "2")

    with held_by_another_run(["blog"], "a long restore of blog (this test)"):
        for call in (lambda: backup_site(site=site, storage=storage),
                     lambda: prune_backups(site=site, storage=storage)):
            # the run also asks a slot of the site's host (free here): the sentence names both
            with pytest.raises(SiteBusy, match=r" did not start: site 'blog' (stayed locked by another run|or host \S+ "
                                               r"stayed busy with other runs) .* for \d+ s; nothing was changed"):
                call()
    assert list(folder.iterdir()) == []
