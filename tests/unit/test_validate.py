"""Validators: what they accept, how they normalize, what they refuse (in one sentence)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from pressfleet import validate as v
from pressfleet.validate import InvalidInput

pytestmark = pytest.mark.unit

HOSTILE = [
    "a;rm -rf /",
    "a b",
    "a\nb",
    "a\x00b",
    "$(reboot)",
    "`id`",
    "a'b",
    'a"b',
    "../etc",
    "",
]


def _one_sentence(exc: BaseException) -> None:
    msg = str(exc)
    assert "\n" not in msg and msg.endswith(".") and len(msg) < 300, msg


# --- hostname -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("h1", "h1"),
        ("Web-01.Example.com.", "web-01.example.com"),
        ("10.200.0.21", "10.200.0.21"),
        ("2001:DB8::1", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
    ],
)
def test_hostname_accepts(raw, expected):
    assert v.hostname(raw) == expected


@pytest.mark.parametrize("raw", HOSTILE + ["-a.example.com", "a-.example.com", "a..b", "a_b.example", "1.2.3.999", "a" * 64, 5])
def test_hostname_refuses(raw):
    with pytest.raises(InvalidInput) as exc:
        v.hostname(raw)
    _one_sentence(exc.value)


# --- domain ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("example.com", "example.com"),
        ("Shop.Example.COM", "shop.example.com"),
        ("example.com.", "example.com"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("a-b.c-d.example", "a-b.c-d.example"),
        ("x" * 63 + ".com", "x" * 63 + ".com"),
    ],
)
def test_domain_normalizes(raw, expected):
    assert v.domain(raw) == expected


@pytest.mark.parametrize(
    "raw",
    HOSTILE
    + [
        "localhost",
        "example..com",
        ".example.com",
        "-a.example.com",
        "a-.example.com",
        "*.example.com",
        "a_b.example.com",
        "example.com..",
        "10.0.0.1",
        "x" * 64 + ".com",
        ".".join(["a" * 60] * 5),  # 304 characters
        "example.com/path",
        "example.com:80",
        None,
    ],
)
def test_domain_refuses(raw):
    with pytest.raises(InvalidInput) as exc:
        v.domain(raw)
    _one_sentence(exc.value)


_LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)


@given(st.lists(_LABEL, min_size=2, max_size=5))
def test_domain_from_valid_labels_is_stable(labels):
    if labels[-1].isdigit():
        labels[-1] = "x" + labels[-1]
    name = ".".join(labels)
    assert v.domain(name) == name
    assert v.domain(name.upper()) == name


@given(st.text(max_size=80))
def test_domain_output_is_always_config_safe(text):
    try:
        out = v.domain(text)
    except InvalidInput:
        return
    assert re.fullmatch(r"[a-z0-9.-]+", out) and ".." not in out and not out.startswith(("-", "."))
    assert v.domain(out) == out


# --- site name, unix user -------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["shop", "a", "blog_2", "s" * 31])
def test_site_name_accepts(raw):
    assert v.site_name(raw) == raw


@pytest.mark.parametrize(
    "raw",
    HOSTILE + ["Shop", "2shop", "_shop", "shop-1", "s" * 32, "root", "mysql", "www-data", "www", "information_schema", "systemd_x", "nobody"],
)
def test_site_name_refuses(raw):
    with pytest.raises(InvalidInput) as exc:
        v.site_name(raw)
    _one_sentence(exc.value)


@given(st.text(max_size=40))
def test_site_name_output_is_an_identifier(text):
    try:
        out = v.site_name(text)
    except InvalidInput:
        return
    assert re.fullmatch(r"[a-z][a-z0-9_]{0,30}", out) and out not in v.RESERVED_NAMES


@pytest.mark.parametrize("raw", ["root", "deploy", "www-data", "_apt", "a" * 32])
def test_unix_user_accepts(raw):
    assert v.unix_user(raw) == raw


@pytest.mark.parametrize("raw", HOSTILE + ["Root", "-x", "a" * 33, "1abc", "a@b"])
def test_unix_user_refuses(raw):
    with pytest.raises(InvalidInput):
        v.unix_user(raw)


# --- paths ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("/", "/"),
        ("/var/www/shop", "/var/www/shop"),
        ("/var//www/./shop/", "/var/www/shop"),
        ("/srv/backups/2026-11-26_a+b@c", "/srv/backups/2026-11-26_a+b@c"),
    ],
)
def test_remote_path_normalizes(raw, expected):
    assert v.remote_path(raw) == expected


@pytest.mark.parametrize(
    "raw",
    ["var/www", "", "/var/www/../etc", "/..", "/var/www/a\nb", "/a\x00", "/a b", "/a;b", "/a$b", "/a'b", "~/x", None],
)
def test_remote_path_refuses(raw):
    with pytest.raises(InvalidInput) as exc:
        v.remote_path(raw)
    _one_sentence(exc.value)


def test_remote_path_prefixes():
    assert v.remote_path("/var/www/shop/htdocs", ["/var/www"]) == "/var/www/shop/htdocs"
    assert v.remote_path("/var/www", ["/var/www/"]) == "/var/www"
    for bad in ["/var/wwwx/shop", "/etc/passwd", "/var"]:
        with pytest.raises(InvalidInput, match="not under an allowed directory"):
            v.remote_path(bad, ["/var/www"])


@given(st.text(alphabet="/.ab-_", max_size=30))
def test_remote_path_output_never_escapes(text):
    try:
        out = v.remote_path(text, ["/a"])
    except InvalidInput:
        return
    assert ".." not in out.split("/") and "//" not in out
    assert out == "/a" or out.startswith("/a/")
    assert v.remote_path(out) == out


# --- email, PHP, port, CIDR, header values, secrets -----------------------------------------------------


@pytest.mark.parametrize(
    "raw, expected",
    [("admin@example.com", "admin@example.com"), ("A.B+wp@Example.COM", "A.B+wp@example.com")],
)
def test_email_accepts(raw, expected):
    assert v.email(raw) == expected


@pytest.mark.parametrize(
    "raw", HOSTILE + ["admin", "@example.com", "admin@", "a..b@example.com", ".a@example.com", "a@b", "a'b@example.com", "a@example.com\n"]
)
def test_email_refuses(raw):
    with pytest.raises(InvalidInput):
        v.email(raw)


def test_php_version():
    assert v.php_version("8.2") == "8.2"
    for bad in ["8.1", "8.3", "7.4", "8", "8.2.1", 8.2]:
        with pytest.raises(InvalidInput) as exc:
            v.php_version(bad)
        _one_sentence(exc.value)


def test_port():
    assert v.port(22) == 22 and v.port(65535) == 65535
    for bad in [0, -1, 65536, True, "22", 22.0, None]:
        with pytest.raises(InvalidInput):
            v.port(bad)


def test_cidr():
    assert v.cidr("203.0.113.0/24") == "203.0.113.0/24"
    assert v.cidr("203.0.113.7") == "203.0.113.7/32"
    assert v.cidr("2001:DB8::/32") == "2001:db8::/32"
    for bad in ["10.0.0.5/24", "10.0.0.0/33", "any", "10.0.0.0/8; deny all", ""]:
        with pytest.raises(InvalidInput):
            v.cidr(bad)


def test_header_value():
    assert v.header_value("default-src 'self'") == "default-src 'self'"
    for bad in ['a" always; add_header X "y', "a\nb", "$host", "a\\b", "{x}", ""]:
        with pytest.raises(InvalidInput):
            v.header_value(bad)


def test_secret():
    good = "Ab3._~+=:,@%^*!()[]{}<>|?/-xyz"
    assert v.secret(good) == good
    for bad in ["short", "a" * 129, "a" * 20 + "'", "a" * 20 + "\\", "a" * 20 + " ", "a" * 20 + "$", "a" * 20 + "#", "a" * 20 + ";"]:
        with pytest.raises(InvalidInput):
            v.secret(bad)


# --- pydantic integration -------------------------------------------------------------------------------


class _Params(BaseModel):
    host: v.Hostname
    domain: v.Domain
    site: v.SiteName
    path: v.RemotePath
    email: v.Email
    php: v.PhpVersion = "8.2"
    port: v.Port = 22
    nets: tuple[v.Cidr, ...] = ()


def test_annotated_types_validate_and_normalize():
    p = _Params(host="H1", domain="Example.COM.", site="shop", path="/var//www/", email="a@EXAMPLE.com", nets=("10.0.0.0/8",))
    assert (p.host, p.domain, p.path, p.email, p.nets) == ("h1", "example.com", "/var/www", "a@example.com", ("10.0.0.0/8",))


@pytest.mark.parametrize(
    "field, bad",
    [("domain", "a;rm -rf /"), ("site", "root"), ("path", "/var/../etc"), ("php", "8.1"), ("port", 0), ("port", True), ("nets", ("10.0.0.1/8",))],
)
def test_annotated_types_refuse(field, bad):
    data = dict(host="h1", domain="example.com", site="shop", path="/var/www", email="a@example.com")
    data[field] = bad
    with pytest.raises(ValidationError):
        _Params(**data)


def test_remote_path_under_type():
    class M(BaseModel):
        p: v.remote_path_under("/var/www", "/srv")  # type: ignore[valid-type]

    assert M(p="/srv/x").p == "/srv/x"
    with pytest.raises(ValidationError):
        M(p="/etc/shadow")


# --- issue 9 item 4: scope ids, and every validator's promise, property-tested ------------------------------
#
# validate.py promises that an accepted value is safe in an nginx, PHP, MariaDB, sshd or nftables line and in a
# shell argument. For every validator: an accepted value matches a strict character class, and it comes out of
# the renderer that prints it exactly as it went in; a valid value with one hostile character put anywhere in it
# is refused.

from hypothesis import HealthCheck, settings  # noqa: E402

from pressfleet.render import configs as render  # noqa: E402
from pressfleet.fleet.siteconfig import SiteConfig, WpSalts  # noqa: E402
from pressfleet.plan.sizing import GiB, plan_host  # noqa: E402


@pytest.mark.parametrize("bad", ["fe80::%x; } location @p { allow all;/128", "fe80::%eth0/128", "fe80::1%a b;c/128"])
def test_cidr_refuses_ipv6_scope_ids(bad):
    with pytest.raises(InvalidInput, match="scope ids") as exc:
        v.cidr(bad)
    _one_sentence(exc.value)


@pytest.mark.parametrize("bad", ["fe80::1%a b;c", "fe80::1%eth0", "[fe80::1%25x]", "fe80::1%"])
def test_hostname_and_server_address_refuse_ipv6_scope_ids(bad):
    from blocks.server import validate_address

    with pytest.raises(InvalidInput, match="scope ids") as exc:
        v.hostname(bad)
    _one_sentence(exc.value)
    with pytest.raises(ValueError, match="scope ids"):
        validate_address(bad)


def test_the_issue_admin_allow_value_never_reaches_the_vhost():
    from blocks.site import WordPressSite

    with pytest.raises(ValidationError, match="scope ids"):
        WordPressSite(name="shop", domain="shop.example.com", admin_email="a@example.com",
                      admin_allow=["fe80::%x; } location @p { allow all;/128"])


@pytest.mark.parametrize("fn, good", [(v.hostname, "a.example.com"), (v.site_name, "shop"), (v.unix_user, "root"),
                                      (v.secret, "a" * 20), (v.email, "a@example.com"), (v.domain, "example.com"),
                                      (v.remote_path, "/var/www"), (v.cidr, "10.0.0.0/8")])
@pytest.mark.parametrize("tail", ["\n", "\r\n", " ", "\x00"])
def test_a_trailing_newline_or_nul_is_refused(fn, good, tail):
    """`re.match(r"...$")` accepts a trailing newline: every pattern is matched whole."""
    with pytest.raises(InvalidInput):
        fn(good + tail)
    with pytest.raises(InvalidInput):
        fn(tail + good)


# Characters that break out of a config line or a shell word, and Unicode lookalikes of safe ones.
CONTROL = "".join(chr(c) for c in range(32)) + "\x7f"
LOOKALIKES = "\u0430\u0435\u043e\u0455\u0131\uff0e\u3002\uff1b\uff5b\uff5d\u2024\u200b\u00a0\u2028\u037e\u0391\uff41"
BREAKERS = " ;{}'\"`$\\#&|<>()*,!?%@/=:[]~^+" + CONTROL + LOOKALIKES

_RFC_LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
_DOMAINS = st.lists(_RFC_LABEL, min_size=2, max_size=4).map(lambda ls: ".".join(ls[:-1] + ["x" + ls[-1]]))
_HOSTNAMES = st.one_of(_DOMAINS, st.ip_addresses().map(str))
_SITE_NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,30}", fullmatch=True).filter(
    lambda s: s not in v.RESERVED_NAMES and not s.startswith(("systemd", "mysql", "php", "nginx", "redis", "pf_",
                                                              "pfrt_"))
    and not s.endswith(v.RESERVED_SUFFIXES))
_UNIX_USERS = st.from_regex(r"[a-z_][a-z0-9_-]{0,31}", fullmatch=True)
_PATHS = st.lists(st.from_regex(r"[A-Za-z0-9_@+-][A-Za-z0-9._@+-]{0,10}", fullmatch=True), max_size=5).map(
    lambda ps: "/" + "/".join(ps))
_EMAILS = st.tuples(st.from_regex(r"[A-Za-z0-9_%+-]{1,10}(\.[A-Za-z0-9_%+-]{1,10}){0,2}", fullmatch=True),
                    _DOMAINS).map(lambda t: f"{t[0]}@{t[1]}")
_NETWORKS = st.one_of(st.ip_addresses(v=4).map(lambda a: f"{a}/32"), st.ip_addresses(v=6).map(lambda a: f"{a}/128"),
                      st.builds(lambda a, p: str(__import__("ipaddress").ip_network(f"{a}/{p}", strict=False)),
                                st.ip_addresses(v=4), st.integers(0, 32)),
                      st.builds(lambda a, p: str(__import__("ipaddress").ip_network(f"{a}/{p}", strict=False)),
                                st.ip_addresses(v=6), st.integers(0, 128)))
_HEADER_CHARS = "".join(chr(c) for c in range(32, 127) if chr(c) not in '"\\${}')
_HEADERS = st.text(alphabet=_HEADER_CHARS, min_size=1, max_size=200)
_SECRET_CHARS = "ABCxyz019._~+=:,@%^*!()[]{}<>|?/-"
_SECRETS = st.text(alphabet=_SECRET_CHARS, min_size=16, max_size=128)

_URLS = st.builds(
    lambda scheme, host, port, path, query: f"{scheme}://{host}{port}{path}{query}",
    st.sampled_from(["http", "https"]),
    st.one_of(_DOMAINS, st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(lambda a: f"[{a}]")),
    st.one_of(st.just(""), st.integers(1, 65535).map(lambda p: f":{p}")),
    st.one_of(st.just(""), st.from_regex(r"/[A-Za-z0-9._~/%+-]{0,30}", fullmatch=True)),
    st.one_of(st.just(""), st.from_regex(r"\?[A-Za-z0-9._~%+=&-]{0,20}", fullmatch=True)),
)

# validator, strategy of valid values, the strict class every accepted value matches, the characters that a
# valid value must never be accepted with.
PROMISES = {
    "hostname": (v.hostname, _HOSTNAMES, r"[a-z0-9.:-]{1,253}", BREAKERS.replace(":", "")),
    "domain": (v.domain, _DOMAINS, r"[a-z0-9.-]{3,253}", BREAKERS.replace("\u0430", "").replace("\u0435", "")
               .replace("\u043e", "").replace("\u0455", "").replace("\u0131", "").replace("\u0391", "")
               .replace("\uff41", "")),  # letters in other scripts are IDNA (punycode), not refused
    "site_name": (v.site_name, _SITE_NAMES, r"[a-z][a-z0-9_]{0,30}", BREAKERS + "-."),
    "unix_user": (v.unix_user, _UNIX_USERS, r"[a-z_][a-z0-9_-]{0,31}", BREAKERS + "."),
    "remote_path": (v.remote_path, _PATHS, r"/([A-Za-z0-9._@+-]+(/[A-Za-z0-9._@+-]+)*)?",
                    BREAKERS.replace("/", "").replace("@", "").replace("+", "")),
    "email": (v.email, _EMAILS, r"[A-Za-z0-9_%+-]+(\.[A-Za-z0-9_%+-]+)*@[a-z0-9.-]+",
              " ;{}'\"`$\\#&|<>()*,!?/=:[]~^" + CONTROL),
    "cidr": (v.cidr, _NETWORKS, r"[0-9a-f.:]+/[0-9]{1,3}", BREAKERS.replace(":", "").replace("/", "")),
    "header_value": (v.header_value, _HEADERS, r"[ !#%&'()*+,\-./0-9:;<=>?@A-Z\[\]^_`a-z|~]{1,2048}",
                     '"\\${}' + CONTROL + LOOKALIKES),
    "url": (v.url, _URLS, r"https?://[A-Za-z0-9.:\[\]-]+(/[A-Za-z0-9._~/%+-]*)?(\?[A-Za-z0-9._~%+=&-]*)?",
            " ;{}'\"`$\\#|<>()*,!@^" + CONTROL + LOOKALIKES),
    "secret": (v.secret, _SECRETS, r"[A-Za-z0-9._~+=:,@%^*!()\[\]{}<>|?/-]{16,128}",
               " '\"`$\\;&#" + CONTROL + LOOKALIKES),
}


@pytest.mark.parametrize("which", sorted(PROMISES))
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(data=st.data())
def test_every_accepted_value_matches_a_strict_class_and_is_stable(which, data):
    fn, valid, strict, _ = PROMISES[which]
    value = data.draw(valid)
    out = fn(value)
    assert re.fullmatch(strict, out), (which, value, out)
    assert fn(out) == out


@pytest.mark.parametrize("which", sorted(PROMISES))
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(data=st.data())
def test_a_valid_value_with_one_hostile_character_is_refused(which, data):
    fn, valid, _, hostile = PROMISES[which]
    value = data.draw(valid)
    ch = data.draw(st.sampled_from(hostile))
    at = data.draw(st.integers(0, len(value)))
    bad = value[:at] + ch + value[at:]
    with pytest.raises(InvalidInput):
        fn(bad)


@pytest.mark.parametrize("which", sorted(PROMISES))
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(alphabet=BREAKERS + "abcz019.-_:/@", max_size=40))
def test_hostile_text_is_refused_or_comes_out_in_the_strict_class(which, text):
    fn, _, strict, _ = PROMISES[which]
    try:
        out = fn(text)
    except InvalidInput:
        return
    assert re.fullmatch(strict, out), (which, text, out)


def test_port_and_php_version_promises():
    for good in (1, 22, 65535):
        assert re.fullmatch(r"[0-9]{1,5}", str(v.port(good)))
    for bad in ("22", "22;", 22.5, True, 0, 65536, None):
        with pytest.raises(InvalidInput):
            v.port(bad)
    for bad in ("8.2\n", " 8.2", "8.2;", "８.２"):
        with pytest.raises(InvalidInput):
            v.php_version(bad)


# --- round trips: what is accepted is what the config file says ------------------------------------------

_PLAN = plan_host(4 * GiB, cpus=2)
_SALTS = WpSalts.generate()


@settings(max_examples=40, deadline=None)
@given(nets=st.lists(_NETWORKS, max_size=4, unique_by=lambda n: v.cidr(n)), purge=st.lists(_NETWORKS, min_size=1,
                                                                                           max_size=2))
def test_networks_round_trip_through_the_nginx_vhost_and_nftables(nets, purge):
    site = SiteConfig(name="shop", domain="shop.example.com", admin_email="a@example.com", admin_allow=tuple(nets))
    text = render.render_nginx_vhost(site, purge_allow=purge)
    allowed = set(re.findall(r"^\s*allow (\S+);$", text, re.M))
    assert allowed == {v.cidr(n) for n in nets} | {v.cidr(n) for n in purge}
    nft = render.render_nftables_conf(ssh_exempt=nets)
    listed = set()
    for group in re.findall(r"saddr \{ (.*) \} tcp dport", nft):
        listed |= set(group.split(", "))
    assert listed == {v.cidr(n) for n in nets}


@settings(max_examples=40, deadline=None)
@given(domain=_DOMAINS, aliases=st.lists(_DOMAINS, max_size=2, unique=True), csp=_HEADERS)
def test_domains_and_header_values_round_trip_through_nginx(domain, aliases, csp):
    aliases = [a for a in aliases if a != domain]
    site = SiteConfig(name="shop", domain=domain, admin_email="a@example.com", aliases=tuple(aliases), csp=csp)
    text = render.render_nginx_vhost(site)
    names = {n for line in re.findall(r"^\s*server_name (.+);$", text, re.M) for n in line.split(" ")}
    assert names == {domain, *aliases}
    headers = render.render_nginx_headers(site)
    assert re.findall(r'^add_header Content-Security-Policy "(.*)" always;$', headers, re.M) == [csp]


@settings(max_examples=40, deadline=None)
@given(users=st.lists(_UNIX_USERS, min_size=1, max_size=4, unique=True), port=st.integers(1, 65535))
def test_users_and_ports_round_trip_through_sshd(users, port):
    text = render.render_sshd_conf(users, port=port)
    assert re.findall(r"^AllowUsers (.+)$", text, re.M) == [" ".join(users)]
    assert re.findall(r"^Port (\d+)$", text, re.M) == [str(port)]


@settings(max_examples=40, deadline=None)
@given(password=_SECRETS, host=_HOSTNAMES, name=_SITE_NAMES)
def test_secrets_hosts_and_site_names_round_trip_through_wp_config_and_the_pool(password, host, name):
    site = SiteConfig(name=name, domain="shop.example.com", admin_email="a@example.com")
    text = render.render_wp_config(site, db_password=password, salts=_SALTS, db_host=host)

    def define(key: str) -> str:
        [raw] = re.findall(rf"^define\( '{key}', '((?:[^'\\]|\\.)*)' \);$", text, re.M)
        return re.sub(r"\\(.)", r"\1", raw)  # PHP single-quoted string: \\ and \' only

    assert define("DB_PASSWORD") == password and define("DB_HOST") == v.hostname(host)
    assert define("DB_NAME") == name and define("DB_USER") == name
    assert define("AUTH_KEY") == _SALTS.auth_key
    pool = render.render_php_pool(site, _PLAN.php)
    assert re.findall(r"^\[(.+)\]$", pool, re.M) == [name]


@settings(max_examples=40, deadline=None)
@given(path=_PATHS.filter(lambda p: p != "/"))
def test_paths_round_trip_through_the_mariadb_conf(path):
    text = render.render_mariadb_conf(_PLAN.innodb, slow_log=path)
    assert re.findall(r"^slow_query_log_file = (.+)$", text, re.M) == [v.remote_path(path)]


# --- issue 9 item 5: reserved affixes -------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["shop_pfold", "shop_pfstage", "pf_shop", "pf_stage_shop", "pf_old_shop",
                                 "pf_rt_ab12", "pfrt_ab12"])
def test_site_names_with_a_reserved_affix_are_refused_in_one_sentence(bad):
    with pytest.raises(InvalidInput, match="staging databases") as exc:
        v.site_name(bad)
    _one_sentence(exc.value)


@pytest.mark.parametrize("bad", ["sh\u200bop.example.com", "shop\uff0eexample.com", "shop\u3002example.com",
                                 "shop.example.com\uff1b", "shop\u00a0.example.com", "\ufeffshop.example.com"])
def test_domain_refuses_invisible_characters_and_full_width_punctuation(bad):
    """IDNA's mapping would drop a zero-width space or turn a full-width dot into a real one: refused instead."""
    with pytest.raises(InvalidInput):
        v.domain(bad)


@pytest.mark.parametrize("bad", ["https://a.example/x;rm -rf /", "https://a.example/$(id)", "https://u:p@a.example/",
                                 "https://a.example/x#frag", "file:///etc/passwd", "https://a.example/{x}",
                                 "https://[fe80::1%25eth0]/x", "https://a.example:0/", "https://a.example/x y"])
def test_release_and_acme_urls_are_plain(bad):
    from blocks.site import WordPressSite

    with pytest.raises(InvalidInput):
        v.url(bad)
    with pytest.raises(ValidationError):
        WordPressSite(name="shop", domain="shop.example.com", admin_email="a@example.com", release_url=bad)
