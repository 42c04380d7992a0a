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
