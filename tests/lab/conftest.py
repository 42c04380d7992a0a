"""Lab-tier fixtures shared by several test modules (on top of tests/conftest.py's)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.conftest import Provisioned, make_site

SECOND_DOMAIN = "two.lab.test"


@dataclass
class SharedHost:
    """The session's provisioned host carrying two sites, both provisioned by the real flow.

    `.one` is the `provisioned` fixture's site (blog.lab.test), `.two` the second (two.lab.test); each is a
    `Provisioned` (.site block, .config, .curl(), .report). Both WordPressSite blocks are saved, naming the
    host as their `server`, so the flow sees them as the host's sites.
    """

    host: object
    server: object
    one: Provisioned
    two: Provisioned


def _saved_copy(site, server, block_name: str):
    """The site block with `server` set, saved under block_name (what `pressfleet provision` would save)."""
    block = type(site)(**{**site.model_dump(exclude={"server"}), "server": server})
    block.save(block_name, overwrite=True)
    return block


@pytest.fixture(scope="session")
def shared_host(provisioned) -> SharedHost:
    """The `provisioned` host with a second site (two.lab.test) provisioned on it through provision_wordpress."""
    from flows.provision_wordpress import provision_wordpress
    from pressfleet.fleet.sites import site_block_name

    server = provisioned.server
    one_site = _saved_copy(provisioned.site, server, site_block_name(provisioned.config.name))
    two_site = _saved_copy(make_site(name="two_lab_test", domain=SECOND_DOMAIN, title="pressfleet second site"),
                           server, site_block_name("two_lab_test"))
    report = provision_wordpress(server=server, site=two_site)
    one = Provisioned(provisioned.host, server, one_site, provisioned.report)
    two = Provisioned(provisioned.host, server, two_site, report)
    return SharedHost(provisioned.host, server, one, two)
