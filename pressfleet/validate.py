"""Validators for every value that can reach a remote host: names, paths, addresses, versions.

Each validator is a plain function that takes the raw value and returns the normalized one, or raises
`InvalidInput` (a `ValueError`) with one clear sentence. Pydantic turns a `ValueError` raised inside an
`AfterValidator` into a `ValidationError`, so the `Annotated` types at the bottom of this module can be
used directly as field types in blocks, flow parameters and `pressfleet.fleet.siteconfig.SiteConfig`.

The rules are deliberately narrower than the standards they cite: a value that passes here is safe to put
into an nginx, PHP-FPM, MariaDB, sshd or nftables configuration line and into a shell command argument
without further quoting tricks (we still quote, but we never rely on quoting alone).
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
import unicodedata
from collections.abc import Iterable
from typing import Annotated, Any

from pydantic import AfterValidator, Strict

__all__ = [
    "InvalidInput",
    "SUPPORTED_PHP_VERSIONS",
    "RESERVED_NAMES",
    "RESERVED_PREFIX",
    "RESERVED_SUFFIXES",
    "hostname",
    "domain",
    "site_name",
    "subsite_slug",
    "unix_user",
    "remote_path",
    "email",
    "php_version",
    "port",
    "cidr",
    "header_value",
    "url",
    "secret",
    "git_ref",
    "git_repo",
    "component_slug",
    "Hostname",
    "Domain",
    "SiteName",
    "SubsiteSlug",
    "UnixUser",
    "RemotePath",
    "Email",
    "PhpVersion",
    "Port",
    "Cidr",
    "HeaderValue",
    "Secret",
    "remote_path_under",
]


class InvalidInput(ValueError):
    """A value was refused; the message is one sentence naming the value and the rule it broke."""


# Debian 12 ships exactly one PHP branch (php8.2); anything else would need a third-party repository.
SUPPORTED_PHP_VERSIONS: tuple[str, ...] = ("8.2",)

# Names a site may not take: they are Debian system users or groups (a site gets a user and a group of its
# own name), MariaDB system schemas (a site gets a database of its own name), or names of our own services.
RESERVED_NAMES: frozenset[str] = frozenset(
    {
        # Debian 12 base users and groups
        "root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp", "proxy",
        "backup", "list", "irc", "gnats", "nobody", "nogroup", "adm", "tty", "disk", "kmem", "dialout",
        "fax", "voice", "cdrom", "floppy", "tape", "sudo", "audio", "dip", "operator", "src", "shadow",
        "utmp", "video", "sasl", "plugdev", "staff", "users", "input", "kvm", "render", "crontab",
        "messagebus", "netdev", "sshd", "ssh", "_apt", "systemd", "www", "wheel", "admin", "administrator",
        # services we install
        "mysql", "mariadb", "redis", "nginx", "php", "fpm", "postfix", "fail2ban", "debian", "ubuntu",
        # MariaDB system schemas and accounts
        "information_schema", "performance_schema", "test", "mariadb_sys",
        # our own accounts and WordPress defaults that would be confusing as site names
        "pressfleet", "deploy", "wordpress", "wp",
        # Redis's own user (a site's Redis ACL user takes the site's name)
        "default",
    }
)

# pressfleet's own objects on a host (staging and scratch databases of restores and restore-tests) start with
# this prefix; no site name may, so a staging object can never be a site's (see `pressfleet.fleet.dbnames`).
RESERVED_PREFIX = "pf_"
# Names of staging databases before they took the reserved prefix (a host restored by an older pressfleet may
# still hold one): no site name may end in them either.
RESERVED_SUFFIXES: tuple[str, ...] = ("_pfstage", "_pfold")
_LEGACY_PREFIXES: tuple[str, ...] = ("pfrt_",)  # restore-test scratch databases, before `pf_rt_`
_SYSTEM_PREFIXES: tuple[str, ...] = ("systemd", "mysql", "php", "nginx", "redis")

_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_SITE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,30}$")
_UNIX_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_PATH_CHARS = re.compile(r"^[A-Za-z0-9._@+/-]+$")
_EMAIL_LOCAL = re.compile(r"^[A-Za-z0-9_%+-]+(?:\.[A-Za-z0-9_%+-]+)*$")
_SECRET = re.compile(r"^[A-Za-z0-9._~+=:,@%^*!()\[\]{}<>|?/-]+$")


def _show(value: Any) -> str:
    """A short, safe rendering of a refused value for an error message."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _require_str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a string, not {type(value).__name__}.")
    return value


# --- names and addresses --------------------------------------------------------------------------------


def _no_scope_id(raw: str, what: str) -> None:
    # Python's ipaddress keeps whatever follows `%` (spaces, `;`, braces) as an IPv6 scope id, and nginx,
    # sshd and nftables would get it verbatim: pressfleet takes no scope ids at all.
    if "%" in raw:
        raise InvalidInput(f"{_show(raw)} is not a valid {what}: IPv6 scope ids (the %zone part) are not accepted.")


def _ip(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def hostname(value: Any) -> str:
    """An SSH target: an IPv4/IPv6 address (no scope id), or an RFC 1123 host name (one or more labels).

    Returns the address in canonical form or the name lower-cased without a trailing dot.
    """
    raw = _require_str(value, "A host name")
    _no_scope_id(raw, "host name")
    ip = _ip(raw.strip("[]") if raw.startswith("[") and raw.endswith("]") else raw)
    if ip is not None:
        return ip
    name = raw.lower()
    if name.endswith("."):
        name = name[:-1]
    labels = name.split(".")
    if (
        not name
        or len(name) > 253
        or not all(_LABEL.fullmatch(label) for label in labels)
        or labels[-1].isdigit()
    ):
        raise InvalidInput(
            f"{_show(raw)} is not a valid host name: use an IP address or letters, digits and inner hyphens "
            "in dot-separated labels of 1-63 characters."
        )
    return name


def _idna_label(label: str) -> str:
    if label.isascii():
        return label
    try:
        import idna  # IDNA 2008 (pulled in by httpx); the stdlib codec only knows IDNA 2003

        return idna.encode(label, uts46=True).decode("ascii")
    except ImportError:  # pragma: no cover - idna is in the lock file
        return label.encode("idna").decode("ascii")
    except Exception as exc:  # idna.IDNAError, UnicodeError
        raise InvalidInput(f"{_show(label)} is not a valid internationalized domain label.") from exc


def domain(value: Any) -> str:
    """A site's fully qualified domain name, normalized: lower-case, IDNA (punycode), no trailing dot.

    At least two labels; each label 1-63 letters, digits or inner hyphens; 253 characters at most; the last
    label (the TLD) not all digits, so an IPv4 address is never taken for a domain. Wildcards, underscores,
    spaces, empty labels (`..`) and leading or trailing hyphens are refused.
    """
    raw = _require_str(value, "A domain")
    bad = (
        f"{_show(raw)} is not a valid domain: use a fully qualified name such as example.com "
        "(letters, digits and inner hyphens, at least two labels)."
    )
    name = raw[:-1] if raw.endswith(".") else raw
    if not name or any(ch.isspace() for ch in name) or "\x00" in name:
        raise InvalidInput(bad)
    # Beyond ASCII only letters, marks and digits (IDNA turns them into punycode): UTS 46 would silently drop
    # a zero-width space or turn a full-width dot or semicolon into ASCII punctuation.
    if any(not ch.isascii() and unicodedata.category(ch)[0] not in "LMN" for ch in name):
        raise InvalidInput(bad)
    labels = name.split(".")
    if len(labels) < 2 or any(label == "" for label in labels):
        raise InvalidInput(bad)
    encoded = [_idna_label(label).lower() for label in labels]
    name = ".".join(encoded)
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in encoded) or encoded[-1].isdigit():
        raise InvalidInput(bad)
    return name


def site_name(value: Any) -> str:
    """A site's short name, used as its unix user and group, PHP-FPM pool, MariaDB database and user.

    `^[a-z][a-z0-9_]{0,30}$`: at most 31 characters, so that `wp_<name>`-style derivations stay within
    MariaDB's 64-character identifiers and Linux's 32-character user names; no hyphen, so it never needs
    quoting as a MariaDB identifier; not one of `RESERVED_NAMES`; not starting with `RESERVED_PREFIX`
    (`pf_`, pressfleet's staging databases) and not ending in one of `RESERVED_SUFFIXES`.
    """
    raw = _require_str(value, "A site name")
    if not _SITE_NAME.fullmatch(raw):
        raise InvalidInput(
            f"{_show(raw)} is not a valid site name: use 1-31 lower-case letters, digits or underscores, "
            "starting with a letter."
        )
    if raw in RESERVED_NAMES or raw.startswith(_SYSTEM_PREFIXES):
        raise InvalidInput(f"{_show(raw)} is reserved for the system and cannot be a site name.")
    if raw.startswith((RESERVED_PREFIX, *_LEGACY_PREFIXES)) or raw.endswith(RESERVED_SUFFIXES):
        raise InvalidInput(
            f"{_show(raw)} cannot be a site name: names starting with {RESERVED_PREFIX!r} or ending in "
            f"{' or '.join(map(repr, RESERVED_SUFFIXES))} are kept for pressfleet's staging databases."
        )
    return raw


_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,48}[a-z0-9])?$")
# WordPress's own reserved subsite names (wpmu_validate_blog_signup, get_subdirectory_reserved_names) and the
# first path segments a subdirectory network's rewrites give to WordPress itself.
RESERVED_SLUGS: frozenset[str] = frozenset({
    "www", "web", "root", "admin", "main", "invite", "administrator", "files", "page", "comments", "blog",
    "feed", "embed", "purge", "wp-admin", "wp-content", "wp-includes", "wp-json", "xmlrpc", "cgi-bin",
})


def subsite_slug(value: Any) -> str:
    """A network subsite's slug: its path (`/slug/`) on a subdirectory network, its first label (`slug.example.com`)
    on a subdomain one. 1-50 lower-case letters, digits or inner hyphens; not one of WordPress's reserved names;
    not all digits (WordPress refuses those: they would look like a year archive)."""
    raw = _require_str(value, "A subsite slug")
    if not _SLUG.fullmatch(raw) or raw.isdigit():
        raise InvalidInput(f"{_show(raw)} is not a valid subsite slug: use 1-50 lower-case letters, digits or inner "
                           "hyphens, not only digits.")
    if raw in RESERVED_SLUGS or raw.startswith("wp-"):
        raise InvalidInput(f"{_show(raw)} is reserved by WordPress (or by pressfleet's nginx rules) and cannot be a "
                           "subsite slug.")
    return raw


def unix_user(value: Any) -> str:
    """An existing unix account name (for sshd's AllowUsers): Debian's NAME_REGEX, 32 characters at most."""
    raw = _require_str(value, "A user name")
    if not _UNIX_USER.fullmatch(raw):
        raise InvalidInput(
            f"{_show(raw)} is not a valid user name: use 1-32 lower-case letters, digits, '_' or '-', "
            "starting with a letter or '_'."
        )
    return raw


_BLOCK_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def block_name(value: Any, what: str = "block") -> str:
    """A name to save a block under (a Server block's `web1`, `lab-web1`): 1-63 lower-case letters, digits
    or dashes, starting and ending with a letter or digit (Prefect's own rule for block names, stricter)."""
    raw = _require_str(value, f"A {what} name")
    if not _BLOCK_NAME.fullmatch(raw):
        raise InvalidInput(
            f"{_show(raw)} is not a valid {what} name: use 1-63 lower-case letters, digits or dashes, "
            "starting and ending with a letter or digit."
        )
    return raw


def port(value: Any) -> int:
    """A TCP/UDP port number, 1-65535 (booleans are refused even though Python counts them as ints)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{_show(value)} is not a valid port: use a whole number from 1 to 65535.")
    if not 1 <= value <= 65535:
        raise InvalidInput(f"{value} is not a valid port: use a whole number from 1 to 65535.")
    return value


def cidr(value: Any) -> str:
    """An IPv4 or IPv6 network in CIDR notation (a bare address means a single host: /32 or /128).

    Host bits must be zero (`10.0.0.5/24` is refused: it is almost always a typo for `10.0.0.0/24`).
    """
    raw = _require_str(value, "A network")
    _no_scope_id(raw, "network")
    try:
        return str(ipaddress.ip_network(raw, strict=True))
    except ValueError as exc:
        raise InvalidInput(
            f"{_show(raw)} is not a valid network: use CIDR notation such as 203.0.113.0/24 or 2001:db8::/32 "
            "with the host bits zero."
        ) from exc


def email(value: Any) -> str:
    """An e-mail address for WordPress's admin and ACME registration: `local@domain`.

    The local part is limited to letters, digits and `._%+-` (no quotes, no leading, trailing or double
    dots), 64 characters at most; the domain follows `domain()` and is normalized the same way.
    """
    raw = _require_str(value, "An e-mail address")
    local, sep, dom = raw.rpartition("@")
    bad = f"{_show(raw)} is not a valid e-mail address: use a form like admin@example.com."
    if not sep or not local or len(local) > 64 or not _EMAIL_LOCAL.fullmatch(local):
        raise InvalidInput(bad)
    try:
        dom = domain(dom)
    except InvalidInput as exc:
        raise InvalidInput(bad) from exc
    result = f"{local}@{dom}"
    if len(result) > 254:
        raise InvalidInput(bad)
    return result


def php_version(value: Any) -> str:
    """A PHP branch that Debian 12 ships from its own archive: only "8.2"."""
    raw = _require_str(value, "A PHP version")
    if raw not in SUPPORTED_PHP_VERSIONS:
        raise InvalidInput(
            f"PHP {_show(raw)} is not available: Debian 12 ships only PHP {', '.join(SUPPORTED_PHP_VERSIONS)}."
        )
    return raw


_URL = re.compile(
    r"(?P<scheme>https?)://(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(?P<port>[0-9]{1,5}))?"
    r"(?P<path>/[A-Za-z0-9._~/%+-]*)?(?P<query>\?[A-Za-z0-9._~%+=&-]*)?"
)


def url(value: Any) -> str:
    """A plain http(s) URL (a WordPress release archive, an ACME directory): scheme, a host that passes
    `hostname()`, an optional port 1-65535, a path of letters, digits and `._~/%+-`, an optional query of
    letters, digits and `._~%+=&-`. No user info, fragment, quote, space, `;`, `$` or braces."""
    raw = _require_str(value, "A URL")
    match = _URL.fullmatch(raw)
    bad = f"{_show(raw)} is not a plain http(s) URL such as https://wordpress.org/latest.tar.gz."
    if not match:
        raise InvalidInput(bad)
    try:
        hostname(match["host"])
    except InvalidInput:
        raise InvalidInput(bad) from None
    if match["port"] is not None and not 1 <= int(match["port"]) <= 65535:
        raise InvalidInput(bad)
    return raw


# --- paths ----------------------------------------------------------------------------------------------


def remote_path(value: Any, allowed_prefixes: Iterable[str] | None = None) -> str:
    """An absolute path on a remote host, normalized (no `//`, `/./` or trailing `/`).

    Refused: relative paths, any `..` component, NUL, newlines or other control characters, and any
    character outside letters, digits and `._@+/-` (so the path is safe inside config files and shell
    arguments). With `allowed_prefixes`, the path must be one of them or lie beneath one.
    """
    raw = _require_str(value, "A remote path")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in raw):
        raise InvalidInput(f"{_show(raw)} is not a valid remote path: it contains a control character.")
    if not raw.startswith("/"):
        raise InvalidInput(f"{_show(raw)} is not a valid remote path: it must be absolute (start with '/').")
    if ".." in raw.split("/"):
        raise InvalidInput(f"{_show(raw)} is not a valid remote path: '..' components are not allowed.")
    if not _PATH_CHARS.fullmatch(raw):
        raise InvalidInput(
            f"{_show(raw)} is not a valid remote path: use only letters, digits and the characters ._@+/-."
        )
    path = "/" + "/".join(part for part in raw.split("/") if part not in ("", "."))
    assert posixpath.normpath(path) == path
    if allowed_prefixes is not None:
        prefixes = [remote_path(p) for p in allowed_prefixes]
        if not any(path == p or path.startswith(p.rstrip("/") + "/") for p in prefixes):
            raise InvalidInput(f"{_show(raw)} is not under an allowed directory ({', '.join(prefixes)}).")
    return path



# --- site code: a git repository, a ref, a plugin or theme folder name ----------------------------------

_GIT_REF = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._/+-]{0,199}$")
_SSH_REPO = re.compile(r"^ssh://(?:(?P<user>[a-z_][a-z0-9_.-]{0,31})@)?(?P<host>[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])"
                       r"(?::(?P<port>[0-9]{1,5}))?(?P<path>/[A-Za-z0-9._~/+-]+)$")
_SCP_REPO = re.compile(r"^(?P<user>[a-z_][a-z0-9_.-]{0,31})@(?P<host>[A-Za-z0-9.-]+):(?P<path>[A-Za-z0-9._~/+-]+)$")
_COMPONENT_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9_-]{0,62}[a-z0-9])?$")


def git_ref(value: Any) -> str:
    """A branch, tag or commit to deploy: letters, digits and `._/+-`, starting with a letter, digit or `_`
    (never `-`, so git cannot take it for an option), 200 characters at most, and none of git's own forbidden
    forms (`..`, `//`, `@{`, a trailing `/`, `.` or `.lock`, a component starting with `.`)."""
    raw = _require_str(value, "A git ref")
    bad = f"{_show(raw)} is not a git branch, tag or commit name (letters, digits and ._/+- only)."
    if not _GIT_REF.fullmatch(raw) or ".." in raw or "//" in raw or raw.endswith(("/", ".", ".lock")):
        raise InvalidInput(bad)
    if any(part.startswith(".") or part.endswith(".lock") for part in raw.split("/")):
        raise InvalidInput(bad)
    return raw


def git_repo(value: Any) -> str:
    """Where site code comes from: git over SSH (`ssh://[user@]host[:port]/path` or `user@host:path`) or an
    absolute local path on the machine that runs the flow. No `..` component, no option-like path, no other
    scheme (git's `ext::` and `file::` transports run commands or read anything)."""
    raw = _require_str(value, "A git repository")
    bad = (f"{_show(raw)} is not a git repository pressfleet fetches from: use ssh://user@host/path, "
           "user@host:path or an absolute local path.")
    if raw.startswith("/"):
        try:
            return remote_path(raw)
        except InvalidInput:
            raise InvalidInput(bad) from None
    match = _SSH_REPO.fullmatch(raw) or _SCP_REPO.fullmatch(raw)
    if not match or ".." in match["path"].split("/") or match["path"].lstrip("/").startswith("-"):
        raise InvalidInput(bad)
    try:
        hostname(match["host"].strip("[]"))
    except InvalidInput:
        raise InvalidInput(bad) from None
    if match.groupdict().get("port") is not None and not 1 <= int(match["port"]) <= 65535:
        raise InvalidInput(bad)
    return raw


def component_slug(value: Any) -> str:
    """A plugin's or theme's folder name under wp-content: lower-case letters, digits, `-` and `_`, 64 at most."""
    raw = _require_str(value, "A plugin or theme name")
    if not _COMPONENT_SLUG.fullmatch(raw):
        raise InvalidInput(f"{_show(raw)} is not a plugin or theme folder name (lower-case letters, digits, - and _).")
    return raw

# --- values that go into config files verbatim ----------------------------------------------------------


def header_value(value: Any) -> str:
    """An HTTP header value we write into nginx inside double quotes (e.g. a Content-Security-Policy).

    Printable ASCII only; no `"` or `\\` (they would end or escape nginx's quoting), no `$` (nginx would
    expand it as a variable), no `{` or `}`, 2048 characters at most.
    """
    raw = _require_str(value, "A header value")
    if (
        not raw
        or len(raw) > 2048
        or any(not (32 <= ord(ch) < 127) for ch in raw)
        or any(ch in raw for ch in '"\\${}')
    ):
        raise InvalidInput(
            f"{_show(raw)} is not a valid header value: use printable ASCII without quotes, backslashes, "
            "'$' or braces."
        )
    return raw


def secret(value: Any) -> str:
    """A generated secret (database password, WordPress salt): 16-128 characters from a quote-free set.

    Letters, digits and ``._~+=:,@%^*!()[]{}<>|?/-``: never a quote, backslash, `$`, `;`, `&`, `#`, backtick
    or whitespace, so it survives PHP single quotes, MariaDB string literals, option files (`#` starts a
    comment there) and shell arguments unchanged.
    """
    raw = _require_str(value, "A secret")
    if not 16 <= len(raw) <= 128 or not _SECRET.fullmatch(raw):
        raise InvalidInput(
            "A secret must be 16-128 characters of letters, digits and ._~+=:,@%^*!()[]{}<>|?/- "
            "(no quotes, backslashes, '$', ';', '&', '#' or spaces)."
        )
    return raw


# --- pydantic types -------------------------------------------------------------------------------------

Hostname = Annotated[str, AfterValidator(hostname)]
Domain = Annotated[str, AfterValidator(domain)]
SiteName = Annotated[str, AfterValidator(site_name)]
SubsiteSlug = Annotated[str, AfterValidator(subsite_slug)]
UnixUser = Annotated[str, AfterValidator(unix_user)]
RemotePath = Annotated[str, AfterValidator(remote_path)]
Email = Annotated[str, AfterValidator(email)]
PhpVersion = Annotated[str, AfterValidator(php_version)]
Port = Annotated[int, Strict(), AfterValidator(port)]
Cidr = Annotated[str, AfterValidator(cidr)]
HeaderValue = Annotated[str, AfterValidator(header_value)]
Secret = Annotated[str, AfterValidator(secret)]


def remote_path_under(*prefixes: str) -> Any:
    """An `Annotated` path type restricted to the given prefixes, e.g. `remote_path_under("/var/www")`."""
    checked = tuple(remote_path(p) for p in prefixes)
    return Annotated[str, AfterValidator(lambda v: remote_path(v, checked))]
