"""A limit per host (issue 10): at most the Server block's max_operations runs work on one host at once, and one
provisioning at a time writes a host's shared files.

No lab host is needed: a closed port stands for the host (nothing may reach it while the host is full), and
another run holding a slot is a thread here, as a second flow run on another worker would be."""

from __future__ import annotations

import pytest

from tests.conftest import held_by_another_run, unreachable_server

pytestmark = pytest.mark.lab


def test_a_full_host_makes_a_run_on_another_of_its_sites_wait_and_a_free_slot_lets_it_in(
        prefect_harness, tmp_path, monkeypatch):
    from prefect.client.orchestration import get_client

    from blocks.site import WordPressSite
    from blocks.storage import LocalStorage
    from flows.backup_site import backup_site
    from pressfleet.fleet.locks import SiteBusy, host_lock_name

    server = unreachable_server(max_operations=1)
    port = server.port
    blog = WordPressSite(name="blog", domain="blog.lab.test", admin_email="admin@lab.test", server=server)
    folder = tmp_path / "backups"
    folder.mkdir()
    storage = LocalStorage(path=str(folder), encryption="none")
    monkeypatch.setenv("PRESSFLEET_SITE_LOCK_WAIT", "2")
    limit_name = host_lock_name("127.0.0.1", port)

    # a restore of another site, 'shop', on the same host
    with held_by_another_run(["shop"], "a long restore of shop (this test)", hosts=[server]):
        with get_client(sync_client=True) as client:
            limit = client.read_global_concurrency_limit_by_name(limit_name)
        assert (limit.limit, limit.active_slots) == (1, 1)
        # site 'blog' is free, its host is not: refused in one sentence, nothing reached the host or storage
        with pytest.raises(SiteBusy, match=rf"backup-site did not start: site 'blog' or host 127\.0\.0\.1-{port} "
                                           r"stayed busy .* for \d+ s; nothing was changed"):
            backup_site(site=blog, storage=storage)
        assert list(folder.iterdir()) == []

        # with two operations allowed the same backup gets in at once (and then fails on the closed port:
        # it reached for the host, which is what a free slot means)
        two = server.model_copy(update={"max_operations": 2})
        blog2 = blog.model_copy(update={"server": two})
        with pytest.raises(Exception) as caught:
            backup_site(site=blog2, storage=storage)
        assert not isinstance(caught.value, SiteBusy), caught.value
        assert "backup failed for blog" in str(caught.value)
        with get_client(sync_client=True) as client:
            limit = client.read_global_concurrency_limit_by_name(limit_name)
        assert (limit.limit, limit.active_slots) == (2, 1)  # resized to the block's; the other run still holds one
    with get_client(sync_client=True) as client:
        assert client.read_global_concurrency_limit_by_name(limit_name).active_slots == 0


def test_one_provisioning_at_a_time_writes_a_hosts_shared_files(prefect_harness, monkeypatch):
    """Provisioning site 'two' while another run provisions site 'one' on the same host (a thread here holds
    what that run holds) is refused, nothing reached the host: both would render the host's jails, includes
    and pools from every site on it, each without the other's. A backup of a third site still gets in."""
    from blocks.site import WordPressSite
    from flows.provision_wordpress import provision_wordpress
    from pressfleet.fleet.locks import SiteBusy, site_lock

    server = unreachable_server(max_operations=3)
    port = server.port
    two = WordPressSite(name="two", domain="two.lab.test", admin_email="admin@lab.test", server=server)
    monkeypatch.setenv("PRESSFLEET_SITE_LOCK_WAIT", "2")

    with held_by_another_run(["one"], "provision-wordpress (this test)", hosts=[server], host_files=True):
        with pytest.raises(SiteBusy, match=rf"provision-wordpress did not start: site 'two' or host 127\.0\.0\.1-{port} "
                                           rf"or the shared files of host 127\.0\.0\.1-{port} \(one provisioning"):
            provision_wordpress(server=server, site=two)
        with site_lock(["three"], "backup-site (this test)", hosts=[server], wait_seconds=2):
            pass  # a slot of the host is free, and a backup does not write the shared files
