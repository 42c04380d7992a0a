"""`pressfleet network list|add-site|remove-site|map-domain`: a WordPress network's subsites from a terminal."""

from __future__ import annotations

import typer

from pressfleet.cli.common import fail as _fail
from pressfleet.cli.common import load_site
from pressfleet.cli.common import run_or_fail as _run


def _network(text: str):
    """(block name, the loaded network) TEXT names; a site that is not a network is refused here."""
    from pressfleet import validate
    from pressfleet.fleet import sites as fleet_sites

    try:
        block = fleet_sites.resolve_site_block(text, fleet_sites.saved_sites())
    except validate.InvalidInput as exc:
        _fail(str(exc))
    site = load_site(block)
    if not site.multisite:
        _fail(f"{site.domain} is not a network (provision it with --multisite subdirectory|subdomain): nothing ran")
    if site.server is None:
        _fail(f"site block {block!r} names no server")
    return block, site


def register(app: typer.Typer) -> None:
    network_app = typer.Typer(help="WordPress networks (multisite): subsites and mapped domains.", no_args_is_help=True)
    app.add_typer(network_app, name="network")

    @network_app.command("list")
    def list_sites(network: str = typer.Argument(..., help="The network: its domain, site name or block name.")) -> None:
        """Every site of the network: blog id, slug, address, title."""
        from pressfleet.multisite.domains import slug_of
        from tasks.common import connected
        from tasks.network import subsites

        _, site = _network(network)
        cfg = site.config()

        def read():
            with connected(site.server) as conn:
                return subsites(conn, cfg)

        for s in _run("network list", read):
            typer.echo(f"{s.blog_id:>4}  {'(main)' if s.main else slug_of(cfg, s):<20} {s.url:<50} {s.title}")

    @network_app.command("add-site")
    def add_site(network: str = typer.Argument(..., help="The network: its domain, site name or block name."),
                 slug: str = typer.Option(..., "--slug", help="The subsite's slug: /SLUG/ or SLUG.<network domain>."),
                 domain: str = typer.Option(None, "--domain", help="Map this domain to the new subsite at once."),
                 title: str = typer.Option(None, "--title", help="Its title (default: the slug)."),
                 admin: str = typer.Option(None, "--admin", help="Its administrator's e-mail (made when new; "
                                                                 "default: the network's admin)."),
                 resolver: str = typer.Option(None, "--resolver", help="DNS resolver ADDRESS[:PORT] for --domain's check.")
                 ) -> None:
        """Add a subsite (WordPress's wp_insert_site()); it must answer 200 with its title over HTTPS."""
        from flows.network_add_site import network_add_site

        block, site = _network(network)
        r = _run("network add-site", lambda: network_add_site(network=site, slug=slug, title=title, admin_email=admin,
                                                              domain=domain, block_name=block, resolver=resolver))
        typer.echo(f"{r['url']}: subsite {r['slug']} (blog {r['blog_id']}), {r['title']!r}, admin {r['admin_email']}")
        if r.get("mapping"):
            typer.echo(f"mapped to {r['mapping']['url']} in {r['mapping']['seconds']} s")

    @network_app.command("remove-site")
    def remove_site(network: str = typer.Argument(..., help="The network: its domain, site name or block name."),
                    subsite: str = typer.Argument(..., help="The subsite: slug, blog id or mapped domain."),
                    storage: str = typer.Option(None, "--storage", help="Storage block for the backup first."),
                    key: str = typer.Option(None, "--key", help="Secret block holding the backup key."),
                    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation.")) -> None:
        """Remove a subsite (wp_delete_site()) after a backup of the network."""
        from flows.network_remove_site import network_remove_site
        from pressfleet.cli.backup import _key, _storage

        block, site = _network(network)
        store, key_block = _storage(storage), _key(key)
        if not yes and not typer.confirm(f"Delete subsite {subsite} of {site.domain} (its tables and uploads) after "
                                         "a backup?"):
            _fail("not removed: not confirmed.")
        r = _run("network remove-site", lambda: network_remove_site(network=site, subsite=subsite, storage=store,
                                                                    encryption_key=key_block, block_name=block))
        typer.echo(f"backup {r['backup']} first; removed subsite {r['subsite']} (blog {r['blog_id']}, {r['url']})")
        for line in r["removed"]:
            typer.echo(f"  {line}")

    @network_app.command("map-domain")
    def map_domain(network: str = typer.Argument(..., help="The network: its domain, site name or block name."),
                   subsite: str = typer.Argument(..., help="The subsite: slug or blog id."),
                   domain: str = typer.Argument(..., help="The domain to serve it at."),
                   resolver: str = typer.Option(None, "--resolver", help="DNS resolver ADDRESS[:PORT] (default: this "
                                                                         "machine's; PRESSFLEET_DNS_RESOLVER).")) -> None:
        """Serve a subsite at its own domain: DNS checked, certificate issued, proved, else undone."""
        from flows.network_map_domain import network_map_domain

        block, site = _network(network)
        r = _run("network map-domain", lambda: network_map_domain(network=site, subsite=subsite, domain=domain,
                                                                  block_name=block, resolver=resolver))
        typer.echo(f"{r['url']}: subsite {r['subsite']} (blog {r['blog_id']}), certificate {r['certificate']}; "
                   f"{r['old_url']} redirects there ({r['seconds']} s)")
