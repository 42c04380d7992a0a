"""nginx steps: the TLS certificate (self-signed, provided, or ACME through certbot), http-level settings
(FastCGI cache, rate limits) and the site's vhost, checked by `nginx -t` before every reload."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NONE

from pressfleet.ssh import converge
from pressfleet.ssh.converge import ManagedFile, StepResult
from pressfleet.ssh.remote import run
from pressfleet.fleet.siteconfig import SiteConfig
from tasks.common import connected, step

_SELF_SIGNED = r"""
set -eu
domain=$1 crt=$2 key=$3 wildcard=${4:-}
san="DNS:$domain"
[ -z "$wildcard" ] || san="$san,DNS:*.$domain"
if [ -s "$crt" ] && [ -s "$key" ] && openssl x509 -in "$crt" -noout -checkend 2592000 >/dev/null \
   && [ "$(openssl x509 -in "$crt" -noout -ext subjectAltName 2>/dev/null | tail -n +2 | tr -d ' ')" = "$san" ]; then
  echo unchanged; exit 0
fi
mkdir -p "$(dirname "$crt")" "$(dirname "$key")"
umask 077
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -sha256 -days 397 -nodes -subj "/CN=$domain" \
  -addext "subjectAltName=$san" -keyout "$key.new" -out "$crt.new" 2>/dev/null
chmod 600 "$key.new"; chmod 644 "$crt.new"
mv -f "$key.new" "$key"; mv -f "$crt.new" "$crt"
echo created
"""


def ensure_self_signed(conn, site: SiteConfig, domain: str | None = None) -> list[str]:
    """A self-signed certificate (tests) for the site's domain (and `*.domain` on a subdomain network), or for
    one mapped DOMAIN."""
    if domain is None:
        domain, (cert, key), wildcard = site.domain, (site.tls_cert_path, site.tls_key_path), site.multisite == "subdomain"
    else:
        (cert, key), wildcard = site.mapped_cert_paths(domain), False
    if converge.current_dry_run() is not None:  # dry run: whether both files are there (expiry not checked)
        if run(conn, ["test", "-s", cert, "-a", "-s", key], check=False).ok:
            return []
        converge.would(f"would create a self-signed certificate for {domain}")
        return [f"self-signed certificate for {domain}"]
    out = converge.sh(conn, _SELF_SIGNED, [domain, cert, key, "wildcard" if wildcard else ""]).stdout.strip()
    return [] if out == "unchanged" else [f"self-signed certificate for {domain}"]


NGINX_USER = "www-data"  # Debian's nginx workers
ACME_CA_PATH = "/etc/pressfleet/acme-ca.pem"
# Debian's certbot.timer renews through certbot.service: it must trust a private ACME server's CA too.
CERTBOT_DROPIN = "/etc/systemd/system/certbot.service.d/pressfleet-acme-ca.conf"


DNS01_HOOK = "/usr/local/lib/pressfleet/dns01-hook"
# certbot's manual hooks for DNS-01 (a subdomain network's wildcard certificate): they put certbot's token in
# the zone through a DNS API with pebble-challtestsrv's two calls (set-txt, clear-txt), and take it out again.
_DNS01_HOOK = b"""#!/bin/sh
# pressfleet: certbot's DNS-01 hook (CERTBOT_DOMAIN, CERTBOT_VALIDATION from certbot). Usage: dns01-hook set|clear URL
set -eu
case "$1" in set) call=set-txt; body='{"host":"_acme-challenge.'"$CERTBOT_DOMAIN"'.","value":"'"$CERTBOT_VALIDATION"'"}';;
  clear) call=clear-txt; body='{"host":"_acme-challenge.'"$CERTBOT_DOMAIN"'."}';; *) exit 2;; esac
case "$CERTBOT_DOMAIN" in *[!a-z0-9.-]*|"") echo "bad domain" >&2; exit 2;; esac
case "$CERTBOT_VALIDATION" in *[!A-Za-z0-9_-]*) echo "bad token" >&2; exit 2;; esac
curl -fsS --max-time 20 -X POST -H 'Content-Type: application/json' --data "$body" -- "${2%/}/$call" >/dev/null
"""


def acme_env(conn, acme_ca_bundle: str | None) -> tuple[list[str], list[str]]:
    """(`env` and its variables for certbot, what changed): a private ACME server's CA is trusted by certbot here
    and by Debian's certbot.service, which renews."""
    if not acme_ca_bundle:
        return ["env"], []
    changed = converge.ensure_files(conn, [
        ManagedFile(ACME_CA_PATH, acme_ca_bundle.encode()),
        ManagedFile(CERTBOT_DROPIN, f"[Service]\nEnvironment=REQUESTS_CA_BUNDLE={ACME_CA_PATH}\n".encode()),
    ], on_change=["systemctl", "daemon-reload"])
    return ["env", f"REQUESTS_CA_BUNDLE={ACME_CA_PATH}"], changed


def ensure_acme(conn, site: SiteConfig, acme_server: str | None, acme_ca_bundle: str | None,
                dns01_api: str | None = None) -> list[str]:
    """A certificate from an ACME CA through certbot (renewed by Debian's certbot timer): HTTP-01 through
    certbot's nginx plugin, or, for a subdomain network, `domain` and `*.domain` over DNS-01 (DNS01_API)."""
    env, changed = acme_env(conn, acme_ca_bundle)
    wildcard = site.multisite == "subdomain"
    if run(conn, ["test", "-s", site.tls_cert_path], check=False).ok:
        if not wildcard or run(conn, ["sh", "-c", 'openssl x509 -in "$1" -noout -ext subjectAltName | grep -qF "DNS:*.$2"',
                                      "sh", site.tls_cert_path, site.domain], check=False).ok:
            return changed
    args = [*env, "certbot", "certonly", *([] if wildcard else ["--nginx"]), "--non-interactive", "--agree-tos",
            "-m", site.admin_email, "--no-random-sleep-on-renew", "--cert-name", site.domain, "-d", site.domain]
    if wildcard:
        if not dns01_api:
            raise ValueError(f"site {site.name} is a subdomain network: its wildcard certificate needs DNS-01, so its "
                             "block must name a DNS API (dns01_api_url)")
        changed += converge.ensure_files(conn, [ManagedFile(DNS01_HOOK, _DNS01_HOOK, 0o700)])
        args += ["-d", f"*.{site.domain}", "--expand", "--manual", "--preferred-challenges", "dns",
                 "--manual-auth-hook", f"{DNS01_HOOK} set {dns01_api}", "--manual-cleanup-hook", f"{DNS01_HOOK} clear {dns01_api}"]
    for alias in site.aliases:
        args += ["-d", alias]
    if acme_server:
        args += ["--server", acme_server]
    if not converge.would(f"would ask the ACME CA for a certificate for {site.domain} (certbot)"):  # dry run
        run(conn, args, timeout=300)
    return changed + [f"ACME certificate for {site.domain}" + (f" and *.{site.domain} (DNS-01)" if wildcard else "")]


def tls_step(conn, site: SiteConfig, certificate: tuple[str | None, str | None], acme_server: str | None,
             acme_ca_bundle: str | None, dns01_api: str | None = None) -> list[str]:
    if site.tls_mode == "self-signed":
        return ensure_self_signed(conn, site)
    if site.tls_mode == "acme":
        return ensure_acme(conn, site, acme_server, acme_ca_bundle, dns01_api)
    pem, key = certificate
    if not pem or not key:
        raise ValueError(f"site {site.name} uses a provided certificate but the block has no certificate and key")
    return converge.ensure_files(conn, [
        ManagedFile(site.tls_cert_path, pem.encode()),
        ManagedFile(site.tls_key_path, key.encode(), 0o600),
    ])


# Debian's nginx.conf still offers TLS 1.0 and 1.1 at http level (every vhost of ours overrides it; this
# covers any other server block).
_TLS_PROTOCOLS = r"""
f=/etc/nginx/nginx.conf
if grep -Eq '^[[:space:]]*ssl_protocols[[:space:]]+TLSv1\.2 TLSv1\.3;' "$f"; then exit 0; fi
if grep -Eq '^[[:space:]]*ssl_protocols[[:space:]]' "$f"; then
  sed -i -E 's/^([[:space:]]*)ssl_protocols[[:space:]][^;]*;.*/\1ssl_protocols TLSv1.2 TLSv1.3;/' "$f"; echo changed
fi
"""


@task(name="nginx", cache_policy=NONE)
def configure_nginx(server, files: list[ManagedFile], *, site: SiteConfig, remove: list[str], links: dict[str, str],
                    cache_dirs: list[str], certificate: tuple[str | None, str | None] = (None, None),
                    acme_server: str | None = None, acme_ca_bundle: str | None = None,
                    dns01_api: str | None = None) -> StepResult:
    """Certificate first (the vhost refers to it), then config; nginx reloads only if `nginx -t` passes."""
    with step("nginx") as result, connected(server) as conn:
        # nginx reads the site's static files through ACLs (www-data is in no site's group): exactly read on the
        # web root, new uploads included, and passage through the site's folder, never wp-config.php.
        granted = converge.ensure_webread(conn, NGINX_USER, site.home, site.web_root)
        if granted:
            result.changed.append(f"nginx may read {site.web_root} ({granted} entries)")
        result.changed += tls_step(conn, site, certificate, acme_server, acme_ca_bundle, dns01_api)
        for d in cache_dirs:
            if not run(conn, ["test", "-d", d], check=False).ok and not converge.would(f"would create {d}"):  # dry run
                run(conn, ["install", "-d", "-o", "www-data", "-g", "www-data", "-m", "0700", d])
                result.changed.append(f"cache folder {d}")
        # Debian's default site goes first (our catch-all replaces it); then the files, validated with
        # nginx -t and undone if refused; then the enabling links, validated again.
        removed = converge.ensure_absent(conn, remove)
        changed_files = converge.ensure_files(conn, files, check=["nginx", "-t"], on_change=["systemctl", "reload", "nginx"])
        relinked = converge.ensure_links(conn, links)
        if converge.sh(conn, _TLS_PROTOCOLS, []).stdout.strip():
            relinked.append("/etc/nginx/nginx.conf: TLS 1.2 and 1.3 only")
        if (relinked or (removed and not changed_files)) and not converge.would("would run `nginx -t` and reload nginx"):
            run(conn, ["nginx", "-t"])
            run(conn, ["systemctl", "reload", "nginx"])
        result.changed += removed + changed_files + relinked
        result.changed += converge.ensure_service(conn, "nginx")
    return result
