"""Rendered configuration: the lines that matter are there, hostile values never get in, and the real
Debian 12 tools accept the files (those checks skip, saying which package is missing, when a tool is absent).

Debian packages the tool checks use: nginx libnginx-mod-http-cache-purge openssl openssh-server
php8.2-fpm (with php8.2-cli) nftables fail2ban python3-systemd mariadb-server redis-server.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from pressfleet import render
from pressfleet.render import (
    RenderError,
    render_fail2ban_filters,
    render_fail2ban_jails,
    render_mariadb_conf,
    render_nftables_conf,
    render_nginx_default_server,
    render_nginx_headers,
    render_nginx_http_conf,
    render_nginx_vhost,
    render_php_fpm_global,
    render_php_ini_overrides,
    render_php_pool,
    render_redis_conf,
    render_site_files,
    render_sshd_conf,
    render_wp_config,
)
from pressfleet.site import SiteConfig, WpSalts, generate_secret
from pressfleet.sizing import GiB, plan_host
from pressfleet.validate import InvalidInput

pytestmark = pytest.mark.unit

IS_ROOT = os.geteuid() == 0


def _site(**kw) -> SiteConfig:
    base = dict(name="shop", domain="Shop.Example.COM", admin_email="admin@example.com")
    base.update(kw)
    return SiteConfig(**base)


FULL = dict(aliases=("www.shop.example.com",), admin_allow=("203.0.113.0/24", "2001:db8::/32"))
VARIANTS = {
    "default": {},
    "full": FULL,
    "no-cache-xmlrpc": dict(page_cache=False, object_cache=False, allow_xmlrpc=True, tls_mode="self-signed"),
}


@pytest.fixture(scope="module")
def plan():
    return plan_host(4 * GiB, cpus=2)


@pytest.fixture(scope="module")
def salts():
    return WpSalts.generate()


# --- a small nginx parser, enough to check add_header inheritance ---------------------------------------


def _nginx_blocks(text: str):
    """Yield (header, direct statements) for every block of an nginx config."""
    text = "\n".join(line.split("#", 1)[0] if not line.lstrip().startswith("#") else "" for line in text.splitlines())
    stack: list[tuple[str, list[str]]] = [("<main>", [])]
    done = []
    buf, quoted = "", False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if quoted:
            buf += ch
            continue
        if ch == ";":
            stack[-1][1].append(" ".join(buf.split()))
            buf = ""
        elif ch == "{":
            stack.append((" ".join(buf.split()), []))
            buf = ""
        elif ch == "}":
            done.append(stack.pop())
            buf = ""
        else:
            buf += ch
    assert len(stack) == 1 and not buf.strip(), "unbalanced braces"
    done.append(stack[0])
    return done


# --- nginx ----------------------------------------------------------------------------------------------


def test_vhost_tls_redirect_and_http2_for_nginx_1_22():
    text = render_nginx_vhost(_site(**FULL))
    assert "listen 443 ssl http2;" in text and "listen [::]:443 ssl http2;" in text
    assert not re.search(r"^\s*http2\s+on\s*;", text, re.M)  # only exists from nginx 1.25.1
    assert "return 301 https://shop.example.com$request_uri;" in text
    assert "server_name shop.example.com www.shop.example.com;" in text  # port 80 redirects both
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in text
    assert "location ^~ /.well-known/acme-challenge/" in text
    assert "gzip on;" in text and "gzip_types" in text


def test_vhost_hardening():
    text = render_nginx_vhost(_site(**FULL))
    assert re.search(r"location = /xmlrpc\.php \{\s*deny all;\s*\}", text)
    assert re.search(r"location \^~ /wp-content/uploads/ \{\s*location ~\* \\\.\(\?:php", text)
    assert "location ~ /\\.(?!well-known/) {" in text
    assert "sql|" in text and "bak|" in text
    assert "limit_req zone=pf_wp_login burst=5 nodelay;" in text
    assert "allow 203.0.113.0/24;" in text and "allow 2001:db8::/32;" in text
    assert "location = /wp-admin/admin-ajax.php" in text and "location ^~ /wp-admin/" in text
    assert "server_tokens off;" in text


def test_vhost_page_cache():
    text = render_nginx_vhost(_site())
    assert "fastcgi_cache pressfleet;" in text
    assert "fastcgi_cache_valid 200 301 3600s;" in text
    assert "fastcgi_cache_bypass $pf_skip_cache;" in text and "fastcgi_no_cache $pf_skip_cache;" in text
    assert "add_header X-Cache-Status $upstream_cache_status always;" in text
    assert 'fastcgi_cache_purge pressfleet "$scheme$request_method$host$1";' in text
    off = render_nginx_vhost(_site(page_cache=False))
    assert "fastcgi_cache" not in off and "X-Cache-Status" not in off
    assert "fastcgi_cache_purge" not in render_nginx_vhost(_site(), cache_purge=False)


def test_vhost_optional_parts():
    text = render_nginx_vhost(_site(allow_xmlrpc=True), ipv6=False)
    assert "[::]" not in text
    assert re.search(r"location = /xmlrpc\.php \{\s*include /etc/nginx/snippets/fastcgi-php\.conf;", text)
    plain = render_nginx_vhost(_site())
    login = [st for header, st in _nginx_blocks(plain) if header == "location = /wp-login.php"]
    assert len(login) == 1 and "deny all" not in login[0]  # no allow-list: open to all, rate-limited
    assert "limit_req zone=pf_wp_login burst=5 nodelay" in login[0]
    assert "location ^~ /wp-admin/" not in plain


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_block_that_adds_headers_includes_the_security_headers(variant):
    site = _site(**VARIANTS[variant])
    text = render_nginx_vhost(site)
    include = f"include {site.nginx_headers_path}"
    servers = 0
    for header, statements in _nginx_blocks(text):
        adds = [s for s in statements if s.startswith("add_header")]
        if header == "server" and any(s.startswith("listen 443") for s in statements):
            servers += 1
            assert include in statements  # every TLS server sends the headers
        if adds:
            assert include in statements, f"{header!r} adds headers but loses the server's"
    assert servers == (2 if site.aliases else 1)


def test_headers_snippet():
    text = render_nginx_headers(_site(hsts_include_subdomains=True))
    for line in [
        'add_header Strict-Transport-Security "max-age=31536000; includeSubDomains" always;',
        "add_header X-Frame-Options \"SAMEORIGIN\" always;",
        'add_header X-Content-Type-Options "nosniff" always;',
        'add_header Referrer-Policy "strict-origin-when-cross-origin" always;',
    ]:
        assert line in text
    assert re.search(r'^add_header Content-Security-Policy ".*frame-ancestors .*" always;$', text, re.M)
    assert f'add_header Permissions-Policy "{render.PERMISSIONS_POLICY}" always;' in text
    assert "camera=()" in render.PERMISSIONS_POLICY
    assert all(line.endswith(" always;") for line in text.splitlines() if line.startswith("add_header"))
    assert "Strict-Transport-Security" not in render_nginx_headers(_site(hsts=False))


def test_http_conf():
    text = render_nginx_http_conf()
    assert "keys_zone=pressfleet:32m" in text and "use_temp_path=off" in text
    assert 'fastcgi_cache_key "$scheme$request_method$host$request_uri";' in text
    assert "limit_req_zone $binary_remote_addr zone=pf_wp_login:10m rate=1r/s;" in text
    assert "wordpress_logged_in_" in text and "woocommerce_items_in_cart" in text
    assert '"0000" 0;' in text
    # Debian's nginx.conf sets these in http{} already: repeating them there is a duplicate-directive error.
    # (Directives at http level are the unindented lines; inside the status server{} they are allowed.)
    for directive in ("gzip ", "ssl_protocols", "ssl_prefer_server_ciphers", "server_tokens"):
        assert not re.search(rf"^{directive}", text, re.M)


def _block(text: str, opening: str) -> str:
    """The lines of the brace block that starts at the line `opening` (up to its matching close)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == opening)
    depth, out = 0, []
    for line in lines[start:]:
        out.append(line)
        depth += line.count("{") - line.count("}")
        if depth == 0:
            return "\n".join(out)
    raise AssertionError(f"unclosed block {opening!r}")


def test_http_conf_status_server_is_loopback_only():
    text = render_nginx_http_conf()
    server = _block(text, "server {")
    listens = re.findall(r"^\s*listen (\S+);", server, re.M)
    assert listens == [f"127.0.0.1:{render.STATUS_PORT}"]  # never a public address, never IPv6 any
    assert "allow 127.0.0.1;" in server and "deny all;" in server
    assert server.index("allow 127.0.0.1;") < server.index("deny all;")
    stub = _block(server, f"location = {render.NGINX_STATUS_PATH} {{")
    assert "stub_status;" in stub
    fpm = _block(server, 'location ~ "^/fpm-status-([a-z][a-z0-9_]{0,30})$" {')
    assert "fastcgi_pass unix:/run/php/php8.2-fpm-$1.status.sock;" in fpm
    assert f"fastcgi_param SCRIPT_NAME {render.FPM_STATUS_PATH};" in fpm
    # the status socket nginx passes to is the one the pool template declares
    plan = plan_host(4 * GiB)
    pool = render_php_pool(_site(), plan.php)
    assert f"pm.status_listen = {render.fpm_status_socket(_site())}" in pool.splitlines()
    assert render.fpm_status_socket(_site()) == "/run/php/php8.2-fpm-shop.status.sock"
    assert f"pm.status_path = {render.FPM_STATUS_PATH}" in pool.splitlines()
    assert render.fpm_status_url_path("shop") == "/fpm-status-shop"
    with pytest.raises(InvalidInput):
        render.fpm_status_url_path("../etc")
    assert "listen 127.0.0.1:9999;" in render_nginx_http_conf(status_port=9999)
    with pytest.raises(InvalidInput):
        render_nginx_http_conf(status_port=0)
    with pytest.raises(InvalidInput):
        render_nginx_http_conf(php_version="8.2; deny all")


def test_default_server():
    text = render_nginx_default_server()
    assert "listen 443 ssl default_server;" in text and "ssl_reject_handshake on;" in text and "return 444;" in text


# --- PHP, MariaDB, Redis --------------------------------------------------------------------------------


def test_php_pool(plan):
    site = _site()
    text = render_php_pool(site, plan.php)
    assert text.splitlines()[3] == "[shop]"
    for line in [
        "user = shop",
        "group = shop",
        "listen = /run/php/php8.2-fpm-shop.sock",
        "listen.mode = 0660",
        f"pm = {plan.php.pm}",
        f"pm.max_children = {plan.php.max_children}",
        "pm.max_requests = 500",
        "security.limit_extensions = .php",
    ]:
        assert line in text.splitlines()
    assert "open_basedir" not in text
    assert "php_admin_value[open_basedir] = /var/www/shop/" in render_php_pool(_site(php_open_basedir=True), plan.php).splitlines()
    assert "disable_functions" in text
    assert "disable_functions" not in render_php_pool(_site(disable_shell_functions=False), plan.php)
    ondemand = plan_host(1 * GiB).php
    small = render_php_pool(site, ondemand)
    assert "pm = ondemand" in small and "pm.process_idle_timeout = 10s" in small and "pm.start_servers" not in small


def test_php_fpm_global_and_ini(plan):
    assert f"process.max = {plan.php.process_max}" in render_php_fpm_global(plan.php)
    ini = render_php_ini_overrides(plan.opcache)
    assert "opcache.memory_consumption = 256" in ini
    assert "opcache.max_accelerated_files = 16229" in ini
    assert "opcache.validate_timestamps = 1" in ini and "opcache.revalidate_freq = 60" in ini
    assert "realpath_cache_size = 4096K" in ini and "realpath_cache_ttl = 600" in ini


def test_mariadb_conf(plan):
    text = render_mariadb_conf(plan.innodb)
    assert "[mariadbd]" in text and "bind-address = 127.0.0.1" in text and "local-infile = 0" in text
    assert f"innodb_buffer_pool_size = {plan.innodb.buffer_pool_bytes // 2**20}M" in text
    assert f"max_connections = {plan.innodb.max_connections}" in text
    assert "binlog_format = ROW" in text and "expire_logs_days = 8" in text
    assert "expire_logs_days = 30" in render_mariadb_conf(plan.innodb, binlog_days=30)
    with pytest.raises(InvalidInput):
        render_mariadb_conf(plan.innodb, bind_address="0.0.0.0\nskip-grant-tables")
    with pytest.raises(InvalidInput):
        render_mariadb_conf(plan.innodb, binlog_days=0)


def test_redis_conf(plan):
    text = render_redis_conf(plan.redis)
    assert "maxmemory 256mb" in text and "maxmemory-policy allkeys-lru" in text
    assert "bind 127.0.0.1 -::1" in text and 'save ""' in text and "protected-mode yes" in text
    with pytest.raises(InvalidInput):
        render_redis_conf(plan.redis, bind=("0.0.0.0 ::",))


# --- sshd, nftables, fail2ban ---------------------------------------------------------------------------


def test_sshd_conf():
    text = render_sshd_conf(["root", "deploy"])
    lines = text.splitlines()
    for line in [
        "PermitRootLogin prohibit-password",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "AuthenticationMethods publickey",
        "MaxAuthTries 3",
        "AllowUsers root deploy",
        "AllowTcpForwarding no",
        "AllowAgentForwarding no",
        "AllowStreamLocalForwarding no",
        "X11Forwarding no",
        "PermitTunnel no",
    ]:
        assert line in lines
    assert "cbc" not in text and "sha1" not in text and "hmac-md5" not in text
    with pytest.raises(InvalidInput):
        render_sshd_conf([])
    with pytest.raises(InvalidInput):
        render_sshd_conf(["root\nPermitRootLogin yes"])
    with pytest.raises(InvalidInput):
        render_sshd_conf(["root"], permit_root_login="yes")


@pytest.mark.skipif(not shutil.which("ssh"), reason="openssh-client is not installed")
def test_ssh_algorithms_exist_in_this_openssh():
    for flag, wanted in (("kex", render.SSH_KEX), ("cipher", render.SSH_CIPHERS), ("mac", render.SSH_MACS)):
        known = set(subprocess.run(["ssh", "-Q", flag], capture_output=True, text=True, check=True).stdout.split())
        assert set(wanted) <= known, (flag, set(wanted) - known)


def test_nftables_conf():
    text = render_nftables_conf(ssh_exempt=["10.200.0.1", "2001:db8::/32"])
    body = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert body[:3] == ["table inet pressfleet", "delete table inet pressfleet", "table inet pressfleet {"]
    assert "flush ruleset" not in text.replace("NO `flush ruleset`", "").replace("`flush ruleset`", "")
    assert "type filter hook input priority filter; policy drop;" in text
    assert 'iif "lo" accept' in text and "ct state established,related accept" in text
    assert "meta l4proto icmp accept" in text and "meta l4proto ipv6-icmp accept" in text
    assert "limit rate over 10/minute" in text
    assert "tcp dport { 80, 443 } accept" in text
    assert "ip saddr { 10.200.0.1/32 } tcp dport 22 accept" in text
    assert "ip6 saddr { 2001:db8::/32 } tcp dport 22 accept" in text
    assert "ip saddr {" not in render_nftables_conf()
    with pytest.raises(InvalidInput):
        render_nftables_conf(ssh_exempt=["10.0.0.0/8 } accept; tcp dport 0-65535 accept #"])


def test_fail2ban_jails():
    sites = [_site(), _site(name="api", domain="api.example.com", allow_xmlrpc=True)]
    text = render_fail2ban_jails(sites, ignore_ip=["10.200.0.1"])
    for line in [
        "banaction = nftables-multiport",
        "[sshd]",
        "backend = systemd",
        "[recidive]",
        "[nginx-botsearch]",
        "[pressfleet-wordpress-login]",
        "[pressfleet-wordpress-xmlrpc]",
        "ignoreip = 127.0.0.1/8 ::1 10.200.0.1/32",
    ]:
        assert line in text.splitlines()
    login = text.split("[pressfleet-wordpress-login]")[1].split("[pressfleet-wordpress-xmlrpc]")[0]
    xmlrpc = text.split("[pressfleet-wordpress-xmlrpc]")[1]
    assert "/var/log/nginx/shop.access.log" in login and "/var/log/nginx/api.access.log" in login
    assert "/var/log/nginx/shop.access.log" in xmlrpc and "api.access.log" not in xmlrpc
    bare = render_fail2ban_jails()
    assert "wordpress" not in bare and "logpath = /var/log/nginx/error.log" in bare
    filters = render_fail2ban_filters()
    assert set(filters) == {"pressfleet-wordpress-login.conf", "pressfleet-wordpress-xmlrpc.conf"}
    assert all("failregex = ^<HOST>" in f for f in filters.values())


# --- WordPress ------------------------------------------------------------------------------------------


def test_wp_config(salts):
    site = _site(uploads_only_writable=True, redis_database=3)
    text = render_wp_config(site, db_password="x" * 24, salts=salts)
    for line in [
        "define( 'DB_NAME', 'shop' );",
        "define( 'DB_PASSWORD', 'xxxxxxxxxxxxxxxxxxxxxxxx' );",
        "define( 'DISALLOW_FILE_EDIT', true );",
        "define( 'DISALLOW_FILE_MODS', true );",
        "define( 'FORCE_SSL_ADMIN', true );",
        "define( 'WP_CACHE', true );",
        "define( 'WP_REDIS_DATABASE', 3 );",
        "define( 'WP_REDIS_PREFIX', 'shop:' );",
        "define( 'WP_REDIS_DISABLED', false );",
        "define( 'WP_HOME', 'https://shop.example.com' );",
        "\tdefine( 'ABSPATH', '/var/www/shop/htdocs/' );",
    ]:
        assert line in text.splitlines()
    for name, value in salts.as_constants().items():
        assert f"define( '{name}', '{value}' );" in text
    with pytest.raises(InvalidInput):
        render_wp_config(site, db_password="short", salts=salts)
    with pytest.raises(InvalidInput):
        render_wp_config(site, db_password="a" * 20 + "');system('id');//", salts=salts)


def test_php_string_escaping():
    assert render._php_str("a'b\\c") == "a\\'b\\\\c"


def test_site_files(plan, salts):
    site = _site()
    files = render_site_files(site, plan.php, db_password=generate_secret(), salts=salts)
    assert set(files) == {
        "/etc/nginx/snippets/pressfleet-headers-shop.conf",
        "/etc/nginx/sites-available/shop.conf",
        "/etc/php/8.2/fpm/pool.d/shop.conf",
        "/var/www/shop/wp-config.php",
    }


# --- hostile values -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field, value",
    [
        ("domain", "a;rm -rf /"),
        ("domain", "example.com; include /etc/shadow"),
        ("domain", "example.com\n    location / { }"),
        ("name", "shop;"),
        ("name", "root"),
        ("admin_email", "a@b.com' ); system('id"),
        ("csp", "default-src 'self'\" always; add_header X-Evil \"1"),
        ("csp", "default-src $host"),
        ("admin_allow", ("0.0.0.0/0; allow all",)),
        ("aliases", ("www.example.com\nserver_name evil",)),
        ("php_version", "8.2; rm"),
        ("table_prefix", "wp';"),
    ],
)
def test_site_config_refuses_hostile_values(field, value):
    with pytest.raises(ValidationError):
        _site(**{field: value})


def test_renderers_refuse_unvalidated_models(plan, salts):
    forged = SiteConfig.model_construct(**{**_site().model_dump(), "domain": "x.com;\n}\nserver { listen 80"})
    for call in (
        lambda: render_nginx_vhost(forged),
        lambda: render_nginx_headers(forged),
        lambda: render_php_pool(forged, plan.php),
        lambda: render_wp_config(forged, db_password=generate_secret(), salts=salts),
        lambda: render_fail2ban_jails([forged]),
    ):
        with pytest.raises(ValidationError):
            call()
    forged_sizing = type(plan.php).model_construct(**{**plan.php.model_dump(), "max_children": "5\nuser = root"})
    with pytest.raises(ValidationError):
        render_php_pool(_site(), forged_sizing)
    with pytest.raises(TypeError):
        render_nginx_vhost(_site().model_dump())


def test_loose_arguments_are_validated():
    site = _site()
    with pytest.raises(InvalidInput):
        render_nginx_vhost(site, log_dir="/var/log/nginx; deny all")
    with pytest.raises(InvalidInput):
        render_nginx_vhost(site, purge_allow=["all"])
    with pytest.raises(InvalidInput):
        render_nginx_http_conf(cache_dir="relative/dir")


def test_no_value_can_add_a_line():
    with pytest.raises(RenderError):
        render._ENV.from_string("x = {{ v }}").render(v="1\ny = 2")
    with pytest.raises(RenderError):
        render._ENV.from_string("x = {{ v }}").render(v="1\r")


@settings(max_examples=150, deadline=None)
@given(domain=st.text(max_size=40), csp=st.text(max_size=60))
def test_arbitrary_text_is_refused_or_rendered_without_new_lines(domain, csp):
    try:
        site = _site(domain=domain, csp=csp)
    except ValidationError:
        return
    baseline = _site(domain="a.example", csp="default-src 'self'")
    for fn in (render_nginx_vhost, render_nginx_headers):
        text, ref = fn(site), fn(baseline)
        assert len(text.splitlines()) == len(ref.splitlines())
        assert text.count("{") == ref.count("{") and text.count("}") == ref.count("}")
        assert text.count('"') == ref.count('"')


# --- the real tools -------------------------------------------------------------------------------------


def _need(*tools: str, root: bool = False, package: str) -> None:
    missing = [t for t in tools if not (shutil.which(t) or Path(t).exists())]
    if missing:
        pytest.skip(f"{', '.join(missing)} not found: install Debian package(s) {package}")
    if root and not IS_ROOT:
        pytest.skip("needs root (a private mount or network namespace)")


def _run(cmd, **kw) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60, **kw)
    assert result.returncode == 0, f"{cmd[0]} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def tls_pair(tmp_path_factory):
    _need("openssl", package="openssl")
    d = tmp_path_factory.mktemp("tls")
    _run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
          "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem"), "-days", "2", "-subj", "/CN=shop.example.com"])
    return d / "cert.pem", d / "key.pem"


def test_nginx_accepts_the_rendered_configuration(tmp_path, tls_pair):
    _need("nginx", "/etc/nginx/nginx.conf", "/etc/nginx/snippets/fastcgi-php.conf", package="nginx")
    _need("/usr/share/nginx/modules-available/mod-http-cache-purge.conf", package="libnginx-mod-http-cache-purge")
    if not IS_ROOT:
        pytest.skip("nginx -t with Debian's nginx.conf (user www-data) needs root")
    cert, key = tls_pair
    logs = tmp_path / "log"
    logs.mkdir()
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "pressfleet.conf").write_text(render_nginx_http_conf(cache_dir=str(tmp_path / "cache")))
    (tmp_path / "conf.d" / "00-default.conf").write_text(render_nginx_default_server())
    sites = tmp_path / "sites"
    sites.mkdir()
    for i, (variant, options) in enumerate(sorted(VARIANTS.items())):
        site = _site(name=f"s{i}", domain=f"s{i}.example.com", **options)
        headers = tmp_path / f"headers-{site.name}.conf"
        headers.write_text(render_nginx_headers(site))
        text = render_nginx_vhost(site, log_dir=str(logs), headers_include=str(headers))
        text = text.replace(site.tls_cert_path, str(cert)).replace(site.tls_key_path, str(key))
        (sites / f"{site.name}.conf").write_text(text)
    main = Path("/etc/nginx/nginx.conf").read_text()
    replaced = (
        main.replace("include /etc/nginx/conf.d/*.conf;", f"include {tmp_path}/conf.d/*.conf;")
        .replace("include /etc/nginx/sites-enabled/*;", f"include {sites}/*.conf;")
        .replace("/var/log/nginx/", f"{logs}/")
    )
    replaced = re.sub(r"^pid .*;$", f"pid {tmp_path}/nginx.pid;", replaced, flags=re.M)
    if replaced.count(str(tmp_path)) < 3:
        pytest.skip("/etc/nginx/nginx.conf is not Debian's: cannot point its includes at the test files")
    # nginx.conf includes fastcgi.conf, mime.types... relative to its own directory.
    for name in ("mime.types", "fastcgi.conf", "fastcgi_params"):
        (tmp_path / name).symlink_to(f"/etc/nginx/{name}")
    (tmp_path / "nginx.conf").write_text(replaced)
    _run(["nginx", "-t", "-e", str(logs / "test.log"), "-c", str(tmp_path / "nginx.conf")])


def test_sshd_accepts_the_rendered_configuration(tmp_path):
    _need("/usr/sbin/sshd", "ssh-keygen", package="openssh-server")
    _need("unshare", root=True, package="util-linux")
    conf = tmp_path / "sshd.conf"
    conf.write_text(render_sshd_conf(["root", "deploy"]))
    _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "hostkey")])
    # sshd -t wants /run/sshd; a private mount namespace with its own /run leaves the machine untouched.
    script = (
        "mount -t tmpfs tmpfs /run && mkdir -m 755 /run/sshd && "
        f"/usr/sbin/sshd -t -f {conf} -h {tmp_path}/hostkey && "
        f"/usr/sbin/sshd -T -f {conf} -h {tmp_path}/hostkey -C user=root,host=h,addr=192.0.2.1"
    )
    effective = _run(["unshare", "-m", "sh", "-c", script]).stdout.splitlines()
    for line in ["permitrootlogin without-password", "maxauthtries 3", "passwordauthentication no",
                 "allowtcpforwarding no", "x11forwarding no", "authenticationmethods publickey"]:
        assert line in effective


def test_php_fpm_accepts_the_rendered_pools(tmp_path, plan):
    _need("php-fpm8.2", package="php8.2-fpm")
    pools = tmp_path / "pool.d"
    pools.mkdir()
    (pools / "00-pressfleet-global.conf").write_text(render_php_fpm_global(plan.php))
    for variant, sizing in (("dynamic", plan.php), ("ondemand", plan_host(1 * GiB).php)):
        site = _site(name=f"s_{variant}", domain=f"{variant}.example.com")
        text = render_php_pool(site, sizing)
        # php-fpm -t resolves the pool's user: use accounts every Debian has.
        text = text.replace(f"user = {site.user}", "user = nobody").replace(f"group = {site.group}", "group = nogroup")
        (pools / f"{site.name}.conf").write_text(text)
    (tmp_path / "php.ini").write_text(render_php_ini_overrides(plan.opcache))
    main = tmp_path / "php-fpm.conf"
    main.write_text(f"[global]\npid = {tmp_path}/fpm.pid\nerror_log = {tmp_path}/fpm.log\ninclude = {pools}/*.conf\n")
    _run(["php-fpm8.2", "-t", "-y", str(main), "-c", str(tmp_path / "php.ini")])
    dump = _run(["php-fpm8.2", "-tt", "-y", str(main)]).stderr
    assert f"process.max = {plan.php.process_max}" in dump


def test_php_reads_the_ini_overrides(tmp_path, plan):
    _need("php", package="php8.2-cli")
    ini = tmp_path / "php.ini"
    ini.write_text(render_php_ini_overrides(plan.opcache))
    code = 'foreach (["opcache.memory_consumption","opcache.max_accelerated_files","realpath_cache_ttl"] as $k) echo ini_get($k), " ";'
    result = _run(["php", "-c", str(ini), "-d", "display_startup_errors=1", "-r", code])
    assert result.stdout.split() == [str(plan.opcache.memory_consumption_mb), str(plan.opcache.max_accelerated_files), "600"]
    assert "Warning" not in result.stderr


def test_wp_config_is_valid_php_and_keeps_secrets_intact(tmp_path, salts):
    _need("php", package="php8.2-cli")
    site = _site()
    password = generate_secret(40)
    (tmp_path / "wp-config.php").write_text(render_wp_config(site, db_password=password, salts=salts))
    _run(["php", "-l", str(tmp_path / "wp-config.php")])
    root = tmp_path / "htdocs"
    root.mkdir()
    (root / "wp-settings.php").write_text(
        "<?php echo json_encode(['DB_PASSWORD' => DB_PASSWORD, 'NONCE_SALT' => NONCE_SALT, 'prefix' => $table_prefix, "
        "'mods' => DISALLOW_FILE_MODS, 'redis' => WP_REDIS_PREFIX]);"
    )
    code = f"define('ABSPATH', '{root}/'); require '{tmp_path}/wp-config.php';"
    import json

    out = json.loads(_run(["php", "-r", code]).stdout)
    assert out == {"DB_PASSWORD": password, "NONCE_SALT": salts.nonce_salt, "prefix": "wp_", "mods": True, "redis": "shop:"}


def test_nftables_loads_and_replaces_only_its_own_table(tmp_path):
    _need("nft", package="nftables")
    _need("unshare", root=True, package="util-linux")
    conf = tmp_path / "nftables.conf"
    conf.write_text(render_nftables_conf(ssh_exempt=["10.200.0.1", "2001:db8::/32"]))
    # In a throwaway network namespace: load, add fail2ban's table, load again (a reload).
    script = f"nft -c -f {conf} && nft -f {conf} && nft add table inet f2b-table && nft -f {conf} && nft list tables"
    tables = _run(["unshare", "-n", "sh", "-c", script]).stdout.split("\n")
    assert "table inet pressfleet" in tables and "table inet f2b-table" in tables


def test_fail2ban_accepts_the_jails_and_filters_match(tmp_path):
    _need("fail2ban-client", "fail2ban-regex", "/etc/fail2ban/jail.conf", package="fail2ban python3-systemd")
    conf = tmp_path / "fail2ban"
    shutil.copytree("/etc/fail2ban", conf)
    logs = tmp_path / "log"
    logs.mkdir()
    sites = [_site(), _site(name="api", domain="api.example.com", allow_xmlrpc=True)]
    for s in sites:
        (logs / f"{s.name}.access.log").touch()
        (logs / f"{s.name}.error.log").touch()
    (logs / "fail2ban.log").touch()
    (conf / "jail.d" / "pressfleet.local").write_text(
        render_fail2ban_jails(sites, nginx_log_dir=str(logs), fail2ban_log=str(logs / "fail2ban.log"))
    )
    for name, text in render_fail2ban_filters().items():
        (conf / "filter.d" / name).write_text(text)
    _run(["fail2ban-client", "-c", str(conf), "-t"])

    sample = tmp_path / "access.log"
    sample.write_text(
        '203.0.113.9 - - [26/Nov/2026:08:00:01 +0000] "POST /wp-login.php HTTP/2.0" 200 4321 "-" "Mozilla/5.0"\n'
        '203.0.113.9 - - [26/Nov/2026:08:00:02 +0000] "POST /wp-login.php HTTP/1.1" 429 162 "-" "curl/8"\n'
        '198.51.100.7 - - [26/Nov/2026:08:00:03 +0000] "POST /wp-login.php HTTP/2.0" 302 0 "-" "Mozilla/5.0"\n'
        '198.51.100.7 - - [26/Nov/2026:08:00:04 +0000] "GET /wp-login.php HTTP/2.0" 200 4321 "-" "Mozilla/5.0"\n'
        '2001:db8::5 - - [26/Nov/2026:08:00:05 +0000] "POST /xmlrpc.php HTTP/1.1" 403 153 "-" "curl/8"\n'
        '198.51.100.8 - - [26/Nov/2026:08:00:06 +0000] "GET /?q=1 HTTP/1.1" 200 1 "-" "\\"POST /wp-login.php HTTP/1.1\\" 200 "\n'
    )

    def matches(filter_name: str) -> list[str]:
        out = _run(["fail2ban-regex", "-v", str(sample), str(conf / "filter.d" / filter_name)]).stdout
        return re.findall(r"^\|\s+(\S+)\s+\w{3} \w{3}", out, re.M)

    assert matches("pressfleet-wordpress-login.conf") == ["203.0.113.9", "203.0.113.9"]
    assert matches("pressfleet-wordpress-xmlrpc.conf") == ["2001:db8::5"]
    ssh = tmp_path / "ssh.log"
    ssh.write_text("Nov 26 08:00:01 h1 sshd[123]: Connection closed by authenticating user root 203.0.113.50 port 50000 [preauth]\n")
    assert "1 matched" in _run(["fail2ban-regex", str(ssh), "sshd[mode=aggressive]"]).stdout


def test_mariadb_accepts_the_rendered_options(tmp_path, plan):
    _need("mariadbd", package="mariadb-server")
    conf = tmp_path / "pressfleet.cnf"
    conf.write_text(render_mariadb_conf(plan.innodb))
    args = ["mariadbd", f"--defaults-file={conf}", "--verbose", "--help"] + (["--user=mysql"] if IS_ROOT else [])
    out = _run(args).stdout  # an unknown or malformed option makes mariadbd exit non-zero
    values = dict(line.split(None, 1) for line in out.splitlines() if re.match(r"^[a-z0-9-]+\s+\S", line))
    assert values["innodb-buffer-pool-size"].strip() == str(plan.innodb.buffer_pool_bytes)
    assert values["max-connections"].strip() == str(plan.innodb.max_connections)
    assert values["local-infile"].strip() == "FALSE"
    assert values["binlog-format"].strip() == "ROW" and values["expire-logs-days"].strip() == "8"


def test_redis_starts_with_the_rendered_configuration(tmp_path, plan):
    _need("redis-server", "redis-cli", package="redis-server (and redis-tools)")
    conf = tmp_path / "redis.conf"
    conf.write_text(render_redis_conf(plan.redis, port=0, data_dir=str(tmp_path), logfile=str(tmp_path / "redis.log"),
                                      pidfile=str(tmp_path / "redis.pid")))
    sock = tmp_path / "redis.sock"
    proc = subprocess.Popen(["redis-server", str(conf), "--unixsocket", str(sock), "--daemonize", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if sock.exists() or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert sock.exists(), (tmp_path / "redis.log").read_text() if (tmp_path / "redis.log").exists() else "no log"
        info = _run(["redis-cli", "-s", str(sock), "INFO", "memory"]).stdout
        settings_ = dict(ln.strip().split(":", 1) for ln in info.splitlines() if ":" in ln)
        assert settings_["maxmemory"] == str(plan.redis.maxmemory_bytes)
        assert settings_["maxmemory_policy"] == "allkeys-lru"
        # CONFIG is renamed away: a client cannot reconfigure the cache (or make it write files)
        refused = subprocess.run(["redis-cli", "-s", str(sock), "CONFIG", "GET", "dir"], capture_output=True, text=True, timeout=10)
        assert "unknown command" in (refused.stdout + refused.stderr).lower()
        subprocess.run(["redis-cli", "-s", str(sock), "SHUTDOWN", "NOSAVE"], capture_output=True, timeout=10)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)
