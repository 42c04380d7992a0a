"""Network (multisite) steps on the host: list, add and remove subsites through WordPress's own API (the PHP
bootstrap), move a subsite to a mapped domain, its certificate, the vhost that serves it, and the check that it
serves its own content over HTTPS."""

from __future__ import annotations

import re

from pressfleet.fleet.siteconfig import SiteConfig
from pressfleet.multisite.domains import Subsite, parse_sites
from pressfleet.render.configs import render_nginx_vhost
from pressfleet.ssh import converge
from pressfleet.ssh.converge import ManagedFile
from pressfleet.ssh.remote import run
from tasks.nginx import acme_env, ensure_self_signed
from tasks.wordpress import bootstrap, ensure_hosts_entry


class NetworkError(RuntimeError):
    pass


def _call(conn, site: SiteConfig, action: str, payload: dict | None = None) -> dict:
    out = bootstrap(conn, site, action, payload)
    if out.get("error"):
        raise NetworkError(f"network {site.name}: {action}: {out['error']}")
    return out


def subsites(conn, site: SiteConfig) -> list[Subsite]:
    """Every site of the network, the main site first, as WordPress lists them."""
    return parse_sites(_call(conn, site, "site-list")["sites"])


def add_subsite(conn, site: SiteConfig, slug: str, domain: str, path: str, title: str, admin_email: str) -> dict:
    """wp_insert_site(): the subsite's tables, options, and its administrator (made when the e-mail has no user)."""
    return _call(conn, site, "site-add", {"slug": slug, "site_domain": domain, "site_path": path, "title": title,
                                          "admin_email": admin_email})


def remove_subsite(conn, site: SiteConfig, blog_id: int) -> bool:
    """wp_delete_site(): its tables and uploads/sites/N go. True if there was one."""
    return bool(_call(conn, site, "site-remove", {"blog_id": blog_id}).get("changed"))


def set_address(conn, site: SiteConfig, blog_id: int, domain: str, path: str, url: str) -> dict:
    """Move subsite BLOG_ID to DOMAIN and PATH (wp_blogs) with home and siteurl URL; returns what it was."""
    return _call(conn, site, "site-address", {"blog_id": blog_id, "site_domain": domain, "site_path": path, "url": url})


def apply_vhost(conn, site: SiteConfig) -> list[str]:
    """The vhost rendered for SITE (its mapped domains as they are now), checked by `nginx -t` before nginx
    reloads; refused, the last good file stays (converge.ensure_files)."""
    return converge.ensure_files(conn, [ManagedFile(site.nginx_vhost_path, render_nginx_vhost(site).encode())],
                                 check=["nginx", "-t"], on_change=["systemctl", "reload", "nginx"])


def issue_certificate(conn, site: SiteConfig, domain: str, *, acme_server: str | None,
                      acme_ca_bundle: str | None) -> tuple[list[str], bool]:
    """DOMAIN's own certificate: self-signed for a self-signed network (tests), else from the ACME CA over HTTP-01
    through certbot's nginx plugin (it answers the challenge itself, so nginx need not know DOMAIN yet).
    Returns (what changed, whether this call made it): one that was there already is never deleted by an undo."""
    if site.tls_mode == "self-signed":
        made = ensure_self_signed(conn, site, domain)
        return made, bool(made)
    cert, _ = site.mapped_cert_paths(domain)
    env, changed = acme_env(conn, acme_ca_bundle)
    if run(conn, ["test", "-s", cert], check=False).ok:
        return changed, False
    args = [*env, "certbot", "certonly", "--nginx", "--non-interactive", "--agree-tos", "-m", site.admin_email,
            "--no-random-sleep-on-renew", "--cert-name", domain, "-d", domain]
    if acme_server:
        args += ["--server", acme_server]
    result = run(conn, args, timeout=300, check=False)
    if not result.ok:
        said = [ln.strip() for ln in (result.stderr + result.stdout).splitlines() if ln.strip()
                and not ln.startswith("Saving debug log")]
        raise NetworkError(f"the ACME CA did not issue a certificate for {domain}: {' '.join(said[-4:])[:600]}")
    return changed + [f"ACME certificate for {domain}"], True


def remove_certificate(conn, site: SiteConfig, domain: str) -> None:
    """Undo issue_certificate (a failed mapping, an unmapped domain)."""
    if site.tls_mode == "self-signed":
        cert, _ = site.mapped_cert_paths(domain)
        run(conn, ["rm", "-rf", "--", cert.rsplit("/", 1)[0]], check=False)
        return
    run(conn, ["certbot", "delete", "--non-interactive", "--cert-name", domain], check=False, timeout=120)


_TITLE = re.compile(r"<title>(.*?)</title>", re.S | re.I)


def fetch_page(conn, host: str, path: str = "/") -> tuple[int, str, str]:
    """(status, body, redirect target) of https://HOST/PATH as this very host serves it (curl pinned to
    127.0.0.1: whatever DNS says elsewhere), the certificate not checked here (see served_certificate)."""
    out = run(conn, ["curl", "-sk", "--max-time", "20", "--resolve", f"{host}:443:127.0.0.1", "-o", "-",
                     "-w", "\n%{http_code} %{redirect_url}", f"https://{host}{path}"], check=False, timeout=40).stdout
    body, _, tail = out.rpartition("\n")
    code, _, location = tail.partition(" ")
    return int(code) if code.isdigit() else 0, body, location.strip()


def served_certificate_matches(conn, host: str, cert_path: str) -> bool:
    """Whether nginx serves the certificate in CERT_PATH for HOST (SNI), by fingerprint."""
    script = ('served=$(openssl s_client -connect 127.0.0.1:443 -servername "$1" </dev/null 2>/dev/null '
              '| openssl x509 -noout -fingerprint -sha256); '
              'want=$(openssl x509 -in "$2" -noout -fingerprint -sha256); [ -n "$served" ] && [ "$served" = "$want" ]')
    return run(conn, ["sh", "-c", script, "sh", host, cert_path], check=False, timeout=30).ok


def page_title(body: str) -> str:
    import html

    found = _TITLE.search(body)
    return html.unescape(found.group(1)).strip() if found else ""


def check_serves(conn, site: SiteConfig, host: str, path: str, title: str, cert_path: str) -> str:
    """Raises NetworkError unless https://HOST/PATH answers 200 with TITLE in its page's title, under the
    certificate CERT_PATH. Returns the page's title."""
    code, body, location = fetch_page(conn, host, path)
    if code != 200:
        raise NetworkError(f"https://{host}{path} answered {code}" + (f" (to {location})" if location else "")
                           + ", not 200")
    got = page_title(body)
    if title not in got:
        raise NetworkError(f"https://{host}{path} serves {got!r}, not the subsite {title!r}")
    if not served_certificate_matches(conn, host, cert_path):
        raise NetworkError(f"https://{host}{path} is not served with its own certificate ({cert_path})")
    return got


RELOAD_WAIT_S = 15.0


def until_reloaded(proof, wait_s: float = RELOAD_WAIT_S) -> None:
    """PROOF() until it passes or WAIT_S is over (then its last failure is raised): `systemctl reload nginx`
    returns before the old workers, which still serve the old configuration, have gone."""
    import time

    deadline = time.monotonic() + wait_s
    while True:
        try:
            proof()
            return
        except NetworkError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.5)


def pin_hosts(conn, site: SiteConfig) -> list[str]:
    """/etc/hosts: the site's names, mapped domains included, are this host (WordPress calls itself)."""
    return ensure_hosts_entry(conn, site)


# --- Prefect tasks: what the network flows compose ----------------------------------------------------------

from prefect import task  # noqa: E402
from prefect.cache_policies import NONE  # noqa: E402

from tasks.common import connected  # noqa: E402


@task(name="subsites", cache_policy=NONE)
def list_subsites(server, site: SiteConfig) -> list[Subsite]:
    with connected(server) as conn:
        return subsites(conn, site)


@task(name="add subsite", cache_policy=NONE)
def create_subsite(server, site: SiteConfig, slug: str, title: str, admin_email: str) -> dict:
    """The new subsite, proved: it answers 200 over HTTPS with its own title. A subsite that does not serve is
    deleted again (wp_delete_site) and the run fails saying why."""
    domain, path = site.subsite_address(slug)
    with connected(server) as conn:
        made = add_subsite(conn, site, slug, domain, path, title, admin_email)
        blog = int(made["site"]["blog_id"])
        try:
            until_reloaded(lambda: check_serves(conn, site, domain, path, title, site.tls_cert_path), 5.0)
        except BaseException:
            _call(conn, site, "site-remove", {"blog_id": blog,
                                              "delete_user": made["user_id"] if made.get("admin_made") else 0})
            raise
        if made.get("admin_made"):  # WordPress's own set-your-password mail, once the subsite is proved
            made["mailed"] = _call(conn, site, "admin-welcome", {"user_id": made["user_id"]}).get("mailed", False)
    return made


@task(name="remove subsite", cache_policy=NONE)
def delete_subsite(server, site: SiteConfig, blog_id: int, unmapped: SiteConfig | None) -> list[str]:
    """wp_delete_site(), then (when the subsite had a mapped domain) the vhost without it and its certificate."""
    done = []
    with connected(server) as conn:
        if remove_subsite(conn, site, blog_id):
            done.append(f"subsite {blog_id}: tables and uploads/sites/{blog_id} deleted (wp_delete_site)")
        if unmapped is not None:
            gone = {m.domain for m in site.mapped_domains} - {m.domain for m in unmapped.mapped_domains}
            done += apply_vhost(conn, unmapped)
            pin_hosts(conn, unmapped)
            for domain in gone:
                remove_certificate(conn, site, domain)
                done.append(f"certificate of {domain} deleted")
    return done


@task(name="map domain", cache_policy=NONE)
def map_subsite_domain(server, site: SiteConfig, mapped: SiteConfig, subsite: Subsite, domain: str, *,
                       acme_server: str | None, acme_ca_bundle: str | None) -> dict:
    """Serve SUBSITE at https://DOMAIN/: its certificate, WordPress's own domain (wp_blogs, home, siteurl), the
    vhost (nginx -t, reload) and /etc/hosts, then proof: 200 with the subsite's title under that certificate,
    and its old address redirecting there. Any step failing undoes every step before it: the subsite keeps its
    old address, the vhost its last good content, and no certificate is left."""
    cert, _ = mapped.mapped_cert_paths(domain)
    old_host, old_path = subsite.domain, subsite.path
    steps: list[str] = []
    with connected(server) as conn:
        made, issued = issue_certificate(conn, mapped, domain, acme_server=acme_server, acme_ca_bundle=acme_ca_bundle)
        steps += made
        before: dict = {}
        try:
            before = set_address(conn, site, subsite.blog_id, domain, "/", f"https://{domain}")
            steps.append(f"subsite {subsite.blog_id}: {old_host}{old_path} -> {domain}/ (wp_blogs, home, siteurl)")

            def proof() -> None:
                check_serves(conn, mapped, domain, "/", subsite.title, cert)
                code, _, location = fetch_page(conn, old_host, old_path)
                if code != 301 or not location.startswith(f"https://{domain}/"):
                    raise NetworkError(f"the old address https://{old_host}{old_path} answers {code} "
                                       f"{location or ''}, not a redirect to https://{domain}/")

            def prove() -> None:
                until_reloaded(proof)

            steps += converge.ensure_files(
                conn, [ManagedFile(mapped.nginx_vhost_path, render_nginx_vhost(mapped).encode())],
                check=["nginx", "-t"], on_change=["systemctl", "reload", "nginx"], prove=prove)
            steps += pin_hosts(conn, mapped)
        except BaseException as failure:
            # every undo step is tried, whatever another one does; the first failure is what the run reports
            undo = [
                # also when site-address itself was cut half-way: putting the old address back is harmless
                lambda: _restore_address(conn, site, subsite, before),
                lambda: apply_vhost(conn, site),  # back already when nginx -t or the proof refused the new one
                lambda: pin_hosts(conn, site),
                *([lambda: remove_certificate(conn, mapped, domain)] if issued else []),
            ]
            left = []
            for step_undo in undo:
                try:
                    step_undo()
                except Exception as exc:  # noqa: BLE001 - said below, after the other undo steps ran
                    left.append(f"{type(exc).__name__}: {exc}"[:200])
            if left:
                raise NetworkError(f"{failure}; and undoing it failed too: {'; '.join(left)}") from failure
            raise
    return {"steps": steps, "certificate": cert}


def _restore_address(conn, site: SiteConfig, subsite: Subsite, before: dict) -> None:
    """The subsite's address, home and siteurl as they were before a mapping began."""
    payload = {"blog_id": subsite.blog_id, "site_domain": subsite.domain, "site_path": subsite.path,
               "url": subsite.home, "siteurl": before.get("siteurl_before") or subsite.home}
    _call(conn, site, "site-address", payload)
