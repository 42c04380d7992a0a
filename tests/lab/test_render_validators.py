"""The real Debian 12 validators accept every rendered configuration (issue 9 item 19).

These ran on the control machine and skipped when a tool was missing, which is exactly CI. They now run in
the session's provisioned lab host, which has Debian's packages, with Debian's own default configuration
around the rendered files, as on a real server (the host's live configuration is never touched):
nginx -t, sshd -t, php-fpm -t, php, fail2ban-client -t and fail2ban-regex, mariadbd, redis-server.
Each test renders into its tmp_path here, the folder goes to the same path on the host, the tool runs there.
(nft -c stays in tests/unit/test_render.py: `make setup` installs nftables on the control machine.)
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import tarfile
from pathlib import Path

import pytest

from pressfleet.ssh.remote import run
from pressfleet.render.configs import (
    render_fail2ban_filters,
    render_fail2ban_jails,
    render_mariadb_conf,
    render_nginx_default_server,
    render_nginx_headers,
    render_nginx_http_conf,
    render_nginx_vhost,
    render_php_fpm_global,
    render_php_ini_overrides,
    render_php_pool,
    render_redis_conf,
    render_sshd_conf,
    render_wp_config,
)
from pressfleet.fleet.siteconfig import WpSalts, generate_secret
from pressfleet.plan.sizing import GiB, plan_host
from tests.conftest import connect_lab
from tests.unit.test_render import VARIANTS, _site

pytestmark = pytest.mark.lab

PACKAGES = ["nginx", "libnginx-mod-http-cache-purge", "php8.2-fpm", "php8.2-cli", "fail2ban", "python3-systemd",
            "mariadb-server", "redis-server", "redis-tools"]


class Validators:
    """A lab host with the validators' Debian packages; runs tools on a test's folder copied to the same path."""

    def __init__(self, host):
        self.host = host
        self.conn = connect_lab(host)

    def push(self, folder: Path) -> None:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            tar.add(folder, arcname=".")
        run(self.conn, ["sh", "-c", 'mkdir -p "$1" && tar -x -C "$1"', "sh", str(folder)], stdin=buf.getvalue())

    def run(self, *args: str, ok: bool = True, timeout: float = 120):
        result = run(self.conn, list(args), check=False, timeout=timeout)
        if ok:
            assert result.exited == 0, f"{args[0]} failed ({result.exited}):\n{result.stdout}\n{result.stderr}"
        return result


@pytest.fixture(scope="module")
def validators(provisioned):
    """The session's provisioned host: it has every validator's Debian package already (no second host to
    install them on); the tools check the test's own files, never the host's live configuration."""
    v = Validators(provisioned.host)
    installed = v.run("dpkg-query", "-W", "-f", "${Package}\n", *PACKAGES).stdout.split()
    assert sorted(installed) == sorted(PACKAGES), "provisioning installs every validator's package"
    yield v
    v.conn.close()


@pytest.fixture(scope="module")
def plan():
    return plan_host(4 * GiB, cpus=2)


@pytest.fixture(scope="module")
def salts():
    return WpSalts.generate()


def _tls_pair(d: Path) -> tuple[Path, Path]:
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem"), "-days", "2", "-subj",
                    "/CN=shop.example.com"], check=True, capture_output=True)
    return d / "cert.pem", d / "key.pem"


def test_nginx_accepts_the_rendered_configuration(validators, tmp_path):
    cert, key = _tls_pair(tmp_path)
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
    main = validators.run("cat", "/etc/nginx/nginx.conf").stdout  # Debian's, with its module includes
    replaced = (
        main.replace("include /etc/nginx/conf.d/*.conf;", f"include {tmp_path}/conf.d/*.conf;")
        .replace("include /etc/nginx/sites-enabled/*;", f"include {sites}/*.conf;")
        .replace("/var/log/nginx/", f"{logs}/")
    )
    replaced = re.sub(r"^pid .*;$", f"pid {tmp_path}/nginx.pid;", replaced, flags=re.M)
    assert replaced.count(str(tmp_path)) >= 3, "Debian's nginx.conf no longer has the includes this test replaces"
    # nginx.conf includes fastcgi.conf, mime.types... relative to its own directory.
    for name in ("mime.types", "fastcgi.conf", "fastcgi_params"):
        (tmp_path / name).symlink_to(f"/etc/nginx/{name}")
    (tmp_path / "nginx.conf").write_text(replaced)
    validators.push(tmp_path)
    assert validators.run("test", "-e", "/etc/nginx/modules-enabled/50-mod-http-cache-purge.conf", ok=False).exited == 0
    validators.run("nginx", "-t", "-e", str(logs / "test.log"), "-c", str(tmp_path / "nginx.conf"))


def test_sshd_accepts_the_rendered_configuration(validators, tmp_path):
    conf = tmp_path / "sshd.conf"
    conf.write_text(render_sshd_conf(["root", "deploy"]))
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "hostkey")], check=True)
    validators.push(tmp_path)
    validators.run("/usr/sbin/sshd", "-t", "-f", str(conf), "-h", str(tmp_path / "hostkey"))
    effective = validators.run("/usr/sbin/sshd", "-T", "-f", str(conf), "-h", str(tmp_path / "hostkey"),
                               "-C", "user=root,host=h,addr=192.0.2.1").stdout.splitlines()
    for line in ["permitrootlogin without-password", "maxauthtries 3", "passwordauthentication no",
                 "allowtcpforwarding no", "x11forwarding no", "authenticationmethods publickey"]:
        assert line in effective


def test_php_fpm_accepts_the_rendered_pools(validators, tmp_path, plan):
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
    validators.push(tmp_path)
    validators.run("php-fpm8.2", "-t", "-y", str(main), "-c", str(tmp_path / "php.ini"))
    dump = validators.run("php-fpm8.2", "-tt", "-y", str(main)).stderr
    assert f"process.max = {plan.php.process_max}" in dump


def test_php_reads_the_ini_overrides(validators, tmp_path, plan):
    ini = tmp_path / "php.ini"
    ini.write_text(render_php_ini_overrides(plan.opcache))
    validators.push(tmp_path)
    code = 'foreach (["opcache.memory_consumption","opcache.max_accelerated_files","realpath_cache_ttl"] as $k) echo ini_get($k), " ";'
    result = validators.run("php", "-c", str(ini), "-d", "display_startup_errors=1", "-r", code)
    assert result.stdout.split() == [str(plan.opcache.memory_consumption_mb), str(plan.opcache.max_accelerated_files), "600"]
    assert "Warning" not in result.stderr


def test_wp_config_is_valid_php_and_keeps_secrets_intact(validators, tmp_path, salts):
    site = _site()
    password = generate_secret(40)
    (tmp_path / "wp-config.php").write_text(render_wp_config(site, db_password=password, salts=salts))
    root = tmp_path / "htdocs"
    root.mkdir()
    (root / "wp-settings.php").write_text(
        "<?php echo json_encode(['DB_PASSWORD' => DB_PASSWORD, 'NONCE_SALT' => NONCE_SALT, 'prefix' => $table_prefix, "
        "'mods' => DISALLOW_FILE_MODS, 'redis' => WP_REDIS_PREFIX]);"
    )
    validators.push(tmp_path)
    validators.run("php", "-l", str(tmp_path / "wp-config.php"))
    code = f"define('ABSPATH', '{root}/'); require '{tmp_path}/wp-config.php';"
    out = json.loads(validators.run("php", "-r", code).stdout)
    assert out == {"DB_PASSWORD": password, "NONCE_SALT": salts.nonce_salt, "prefix": "wp_", "mods": True, "redis": "shop:"}


def test_fail2ban_accepts_the_jails_and_filters_match(validators, tmp_path):
    conf = tmp_path / "fail2ban"
    validators.run("sh", "-c", 'mkdir -p "$1" && cp -a /etc/fail2ban/. "$1/"', "sh", str(conf))  # Debian's
    (conf / "jail.d").mkdir(parents=True)
    (conf / "filter.d").mkdir()
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
    sample = tmp_path / "access.log"
    sample.write_text(
        '203.0.113.9 - - [26/Nov/2026:08:00:01 +0000] "POST /wp-login.php HTTP/2.0" 200 4321 "-" "Mozilla/5.0"\n'
        '203.0.113.9 - - [26/Nov/2026:08:00:02 +0000] "POST /wp-login.php HTTP/1.1" 429 162 "-" "curl/8"\n'
        '198.51.100.7 - - [26/Nov/2026:08:00:03 +0000] "POST /wp-login.php HTTP/2.0" 302 0 "-" "Mozilla/5.0"\n'
        '198.51.100.7 - - [26/Nov/2026:08:00:04 +0000] "GET /wp-login.php HTTP/2.0" 200 4321 "-" "Mozilla/5.0"\n'
        '2001:db8::5 - - [26/Nov/2026:08:00:05 +0000] "POST /xmlrpc.php HTTP/1.1" 403 153 "-" "curl/8"\n'
        '198.51.100.8 - - [26/Nov/2026:08:00:06 +0000] "GET /?q=1 HTTP/1.1" 200 1 "-" "\\"POST /wp-login.php HTTP/1.1\\" 200 "\n'
    )
    ssh = tmp_path / "ssh.log"
    ssh.write_text("Nov 26 08:00:01 h1 sshd[123]: Connection closed by authenticating user root 203.0.113.50 port 50000 [preauth]\n")
    validators.push(tmp_path)
    validators.run("fail2ban-client", "-c", str(conf), "-t")

    def matches(filter_name: str) -> list[str]:
        out = validators.run("fail2ban-regex", "-v", str(sample), str(conf / "filter.d" / filter_name)).stdout
        return re.findall(r"^\|\s+(\S+)\s+\w{3} \w{3}", out, re.M)

    assert matches("pressfleet-wordpress-login.conf") == ["203.0.113.9", "203.0.113.9"]
    assert matches("pressfleet-wordpress-xmlrpc.conf") == ["2001:db8::5"]
    assert "1 matched" in validators.run("fail2ban-regex", str(ssh), "sshd[mode=aggressive]").stdout


def test_mariadb_accepts_the_rendered_options(validators, tmp_path, plan):
    conf = tmp_path / "pressfleet.cnf"
    conf.write_text(render_mariadb_conf(plan.innodb))
    validators.push(tmp_path)
    # an unknown or malformed option makes mariadbd exit non-zero
    out = validators.run("mariadbd", f"--defaults-file={conf}", "--verbose", "--help", "--user=mysql").stdout
    values = dict(line.split(None, 1) for line in out.splitlines() if re.match(r"^[a-z0-9-]+\s+\S", line))
    assert values["innodb-buffer-pool-size"].strip() == str(plan.innodb.buffer_pool_bytes)
    assert values["max-connections"].strip() == str(plan.innodb.max_connections)
    assert values["local-infile"].strip() == "FALSE"
    assert values["binlog-format"].strip() == "ROW" and values["expire-logs-days"].strip() == "8"


REDIS = """
conf=$1 sock=$2 log=$3
redis-server "$conf" --unixsocket "$sock" --daemonize no >/dev/null 2>&1 &
pid=$!
i=0; while [ ! -S "$sock" ] && [ $i -lt 100 ] && kill -0 $pid 2>/dev/null; do sleep 0.05; i=$((i+1)); done
[ -S "$sock" ] || { cat "$log" >&2; exit 3; }
redis-cli -s "$sock" INFO memory
echo "--- config"
redis-cli -s "$sock" CONFIG GET dir 2>&1
redis-cli -s "$sock" SHUTDOWN NOSAVE >/dev/null 2>&1
wait $pid || true
"""


def test_redis_starts_with_the_rendered_configuration(validators, tmp_path, plan):
    conf = tmp_path / "redis.conf"
    conf.write_text(render_redis_conf(plan.redis, port=0, data_dir=str(tmp_path), logfile=str(tmp_path / "redis.log"),
                                      pidfile=str(tmp_path / "redis.pid")))
    validators.push(tmp_path)
    validators.run("chown", "-R", "redis:redis", str(tmp_path))
    out = validators.run("setpriv", "--reuid=redis", "--regid=redis", "--init-groups", "sh", "-c", REDIS, "sh",
                         str(conf), str(tmp_path / "redis.sock"), str(tmp_path / "redis.log")).stdout
    info, config = out.split("--- config")
    settings_ = dict(ln.strip().split(":", 1) for ln in info.splitlines() if ":" in ln)
    assert settings_["maxmemory"] == str(plan.redis.maxmemory_bytes)
    assert settings_["maxmemory_policy"] == "allkeys-lru"
    # CONFIG is renamed away: a client cannot reconfigure the cache (or make it write files)
    assert "unknown command" in config.lower()
