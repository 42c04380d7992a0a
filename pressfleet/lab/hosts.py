"""The lab: pristine Debian 12 servers on this one machine.

Each lab host is a real Debian 12 system with systemd as PID 1 (systemd-nspawn), its own network
namespace and address on the lab bridge, and sshd accepting only the lab's key. Hosts are overlay
copies of one template built once with debootstrap, so a host boots to SSH in about a second and
`down` leaves nothing behind.

Network rules the lab keeps: hosts sit on a bridge with no route out and nothing is forwarded to or
from it (the bridge's own `forwarding` flag is off and an nftables rule drops what would be routed
through it, so a machine with global IP forwarding on, as Docker sets it, runs the lab as safely);
apt inside a host reaches the Debian mirror only through an apt-cacher-ng proxy bound to the bridge
address.

Namespaces: `PRESSFLEET_LAB_NAMESPACE` picks a lab of its own on the same machine (the tests use
`test`): its own bridge, address range, apt proxy, mirror server, hosts folder and network-namespace
and veth names, so `lab down --all` there never touches the operator's hosts. Unset (or `default`) is
the operator's lab (`pfbr0`, 10.200.0.0/24). The template is shared.

The lab needs root on Linux with systemd-nspawn, debootstrap, apt-cacher-ng, iproute2 and
ssh-keygen (`make setup` installs them).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from pressfleet.paths import lab_dir, world_readable

# The default namespace's network (the operator's lab); other namespaces: see Namespace below.
BRIDGE = "pfbr0"
NETWORK = ipaddress.ip_network("10.200.0.0/24")
BRIDGE_ADDRESS = ipaddress.ip_address("10.200.0.1")
PROXY_PORT = 13142  # not 3142: a distro apt-cacher-ng service may already hold that port
MIRROR_PORT = 13180  # the lab's file mirror (WordPress release archives) on the bridge
FIRST_HOST_INDEX = 10
MAX_HOSTS = 200
NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,11}$")

# Everything baked into the template. Changing this list (or the setup below) changes the
# template's id, so a stale cache is never reused.
TEMPLATE_PACKAGES = [
    "systemd", "systemd-sysv", "dbus", "libpam-systemd", "openssh-server", "sudo", "curl",
    "ca-certificates", "python3", "iproute2", "procps", "zstd",
]
TEMPLATE_RECIPE_VERSION = "4"

SSHD_LAB_CONF = """\
# pressfleet lab: key-only access for the lab key.
HostKey /etc/ssh/ssh_host_ed25519_key
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UseDNS no
"""

REQUIRED_COMMANDS = ["debootstrap", "systemd-nspawn", "apt-cacher-ng", "ip", "ssh-keygen", "mount"]


class LabError(RuntimeError):
    """A lab operation that cannot go on; the message is one sentence for the person."""


# ---------------------------------------------------------------------------------------------
# namespaces: separate labs on one machine (the operator's, the tests')

NAMESPACE_ENV = "PRESSFLEET_LAB_NAMESPACE"
NETWORK_ENV = "PRESSFLEET_LAB_NETWORK"  # the /24 of a namespace not in KNOWN_NETWORKS
DEFAULT_NAMESPACE = "default"
NAMESPACE_RE = re.compile(r"^[a-z][a-z0-9]{0,5}$")  # no dash: "pf<ns>-" prefixes can never overlap
KNOWN_NETWORKS = {DEFAULT_NAMESPACE: str(NETWORK), "test": "10.201.0.0/24"}


@dataclass(frozen=True)
class Namespace:
    """One lab: its bridge, address range, folder and the names of its network namespaces and veths."""

    name: str
    bridge: str
    network: ipaddress.IPv4Network
    netns_prefix: str
    veth_prefix: str

    @property
    def is_default(self) -> bool:
        return self.name == DEFAULT_NAMESPACE

    @property
    def bridge_address(self) -> ipaddress.IPv4Address:
        return self.network.network_address + 1

    @property
    def dir(self) -> Path:
        """Hosts, proxy and mirror state, locks (the default namespace's is the lab folder itself)."""
        return lab_dir() if self.is_default else lab_dir() / "ns" / self.name

    @property
    def nft_table(self) -> str:
        return f"pressfleet_lab_{self.name}"

    def proxy_url(self) -> str:
        return f"http://{self.bridge_address}:{PROXY_PORT}"


def namespace(name: str | None = None) -> Namespace:
    """The lab namespace NAME (default: $PRESSFLEET_LAB_NAMESPACE, else the operator's own)."""
    name = name if name is not None else (os.environ.get(NAMESPACE_ENV) or DEFAULT_NAMESPACE)
    if name == DEFAULT_NAMESPACE:
        return Namespace(name, BRIDGE, NETWORK, "pf-", "pfv")
    if not NAMESPACE_RE.match(name):
        raise LabError(f"lab namespace {name!r} is not valid: use 1-6 lower-case letters or digits, starting with a letter")
    cidr = KNOWN_NETWORKS.get(name) or os.environ.get(NETWORK_ENV, "")
    try:
        network = ipaddress.IPv4Network(cidr)
    except ValueError:
        raise LabError(f"lab namespace {name!r} needs its address range: set {NETWORK_ENV} to a private /24 "
                       "such as 10.202.0.0/24") from None
    if network.prefixlen != 24 or not network.is_private:
        raise LabError(f"{NETWORK_ENV}={cidr} is not a private /24: the lab gives every namespace one")
    if name not in KNOWN_NETWORKS and network in {ipaddress.IPv4Network(c) for c in KNOWN_NETWORKS.values()}:
        raise LabError(f"{NETWORK_ENV}={cidr} is another lab namespace's address range")
    return Namespace(name, f"pf{name}br", network, f"pf{name}-", f"pf{name}v")


@dataclass
class LabHost:
    name: str
    index: int
    address: str
    port: int
    user: str
    private_key_path: str
    host_key: str
    fingerprint: str
    pid: int | None = None
    template: str = "pristine"  # or "stack-<id>": booted from the stack template (see ensure_stack_template)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


# ---------------------------------------------------------------------------------------------
# small helpers


def _run(args: list[str], *, check: bool = True, quiet: bool = False, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, capture_output=True, text=True, **kw)
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise LabError(f"`{' '.join(args[:3])}` failed (exit {proc.returncode}): {' / '.join(detail)}")
    return proc


def _pid_alive(pid: int | None, expect: str | None = None) -> bool:
    if not pid:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if stat.rsplit(")", 1)[-1].split()[0] == "Z":
        return False
    return expect is None or expect in cmdline


@contextlib.contextmanager
def _lock(name: str, base: Path | None = None):
    base = base or lab_dir()
    base.mkdir(parents=True, exist_ok=True)
    with open(base / f".{name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def validate_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise LabError(
            f"lab host name {name!r} is not valid: use 1-12 lower-case letters, digits or dashes, starting with a letter"
        )
    return name


def preflight() -> None:
    """Refuse, in one sentence, to run where the lab cannot work."""
    if not sys.platform.startswith("linux"):
        raise LabError(f"the lab needs Linux (this is {sys.platform}): it boots hosts with systemd-nspawn")
    if os.geteuid() != 0:
        raise LabError("the lab needs root: run it as root (it creates network namespaces, a bridge and overlay mounts)")
    missing = [c for c in REQUIRED_COMMANDS if shutil.which(c) is None and not Path("/usr/sbin", c).exists()]
    if missing:
        raise LabError(f"the lab needs {', '.join(missing)}: run `make setup` (it installs them)")
    caps = 0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            caps = int(line.split()[1], 16)
    needed = {"CAP_SYS_ADMIN": 21, "CAP_NET_ADMIN": 12}
    lacking = [n for n, bit in needed.items() if not caps & (1 << bit)]
    if lacking:
        raise LabError(f"the lab needs the {' and '.join(lacking)} capability, which this process lacks")


# ---------------------------------------------------------------------------------------------
# template


def _debian_mirror() -> str:
    """The Debian mirror this machine's apt uses: the lab uses the same one, through the proxy."""
    for src in [Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list")]:
        if not src.exists():
            continue
        text = src.read_text()
        m = re.search(r"^URIs:\s*(\S+/debian)/?\s*$", text, re.M) or re.search(
            r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+/debian)/?\s+bookworm\s", text, re.M
        )
        if m:
            return m.group(1)
    return "http://deb.debian.org/debian"


def _sources_text(mirror: str) -> str:
    security = mirror.rsplit("/", 1)[0] + "/debian-security"
    return (
        f"Types: deb\nURIs: {mirror}\nSuites: bookworm bookworm-updates\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
        f"Types: deb\nURIs: {security}\nSuites: bookworm-security\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    )


APT_PROXY_FILE = "etc/apt/apt.conf.d/01pressfleet-proxy"


def _apt_proxy_line(ns: Namespace) -> str:
    return f'Acquire::http::Proxy "{ns.proxy_url()}";\n'


def template_id() -> str:
    recipe = json.dumps([TEMPLATE_RECIPE_VERSION, TEMPLATE_PACKAGES, SSHD_LAB_CONF, _debian_mirror(), PROXY_PORT])
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


def template_path() -> Path:
    return lab_dir() / f"template-{template_id()}"


@world_readable  # the lab builds trees other users of a host must read, whatever the caller's umask
def ensure_template(log=print) -> Path:
    """Build the pristine Debian 12 template once (debootstrap through the lab proxy) and cache it."""
    tpl = template_path()
    if (tpl / ".pressfleet-template").exists():
        return tpl
    with _lock("template"):
        if (tpl / ".pressfleet-template").exists():
            return tpl
        ensure_network()
        proxy = namespace().proxy_url()  # debootstrap goes through this namespace's proxy
        build = tpl.with_name(tpl.name + ".build")
        if build.exists():
            shutil.rmtree(build)
        mirror = _debian_mirror()
        log(f"lab: building the Debian 12 template in {tpl} (once; about a minute)")
        started = time.monotonic()
        env = dict(os.environ, http_proxy=proxy, DEBIAN_FRONTEND="noninteractive")
        env.pop("https_proxy", None)
        _run(
            ["debootstrap", "--variant=minbase", f"--include={','.join(TEMPLATE_PACKAGES)}", "bookworm", str(build), mirror],
            env=env,
        )
        (build / "etc/apt/sources.list").unlink(missing_ok=True)
        (build / "etc/apt/sources.list.d").mkdir(parents=True, exist_ok=True)
        (build / "etc/apt/sources.list.d/debian.sources").write_text(_sources_text(mirror))
        # The default namespace's proxy line (the template is shared; `up` writes each host's own in its overlay).
        (build / APT_PROXY_FILE).write_text(_apt_proxy_line(namespace(DEFAULT_NAMESPACE)))
        for key in (build / "etc/ssh").glob("ssh_host_*"):
            key.unlink()  # every host gets its own keys at boot time
        (build / "etc/ssh/sshd_config.d/pressfleet-lab.conf").write_text(SSHD_LAB_CONF)
        # root's user manager runs from boot and never stops: in these containers stopping it can hang for 2 min
        # ("Processes still around after final SIGKILL"), and every login meanwhile waits (measured: a channel
        # took 48-60 s to open on an idle host when root's last session had ended 10 s before)
        (build / "var/lib/systemd/linger").mkdir(parents=True, exist_ok=True)
        (build / "var/lib/systemd/linger/root").touch()
        (build / "etc/machine-id").write_text("")
        (build / "var/lib/dbus/machine-id").unlink(missing_ok=True)
        shutil.rmtree(build / "var/cache/apt/archives", ignore_errors=True)
        (build / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)
        (build / ".pressfleet-template").write_text(json.dumps({"built": time.time(), "seconds": time.monotonic() - started}))
        build.rename(tpl)
        log(f"lab: template ready in {time.monotonic() - started:.0f} s")
        return tpl


# ---------------------------------------------------------------------------------------------
# stack template: the base template with a package list already installed (what most tests want)

STACK_RECIPE_VERSION = "1"
PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]{0,99}$")  # Debian's package name rule
_STACK_MARK = ".pressfleet-stack"
# Files a booted host makes its own: removed from the stack layer so every host gets the base's (or its own).
_HOST_OWN = ["etc/hostname", "etc/hosts", "root/.ssh", "etc/machine-id", "var/lib/dbus/machine-id",
             "var/lib/systemd/random-seed", "var/lib/systemd/credential.secret", "var/log/journal", APT_PROXY_FILE,
             "root/.bash_history", "tmp", "var/tmp"]


def _packages(packages: list[str]) -> list[str]:
    bad = [p for p in packages if not isinstance(p, str) or not PACKAGE_RE.match(p)]
    if bad or not packages:
        raise LabError(f"stack template packages {bad or packages!r} are not Debian package names")
    return sorted(set(packages))


def stack_template_id(packages: list[str]) -> str:
    """The stack template's id: the base template's id and the sorted package list (a new list, a new template)."""
    recipe = json.dumps([STACK_RECIPE_VERSION, template_id(), _packages(packages)])
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


def stack_template_path(packages: list[str]) -> Path:
    return lab_dir() / f"stack-{stack_template_id(packages)}"


@world_readable  # the lab builds trees other users of a host must read, whatever the caller's umask
def ensure_stack_template(packages: list[str], log=print) -> Path:
    """The stack template for PACKAGES: an overlay layer over the base template with those Debian packages
    installed, built once per machine (and again when the list changes) and cached beside the base.

    It is built the way provisioning installs them: a pristine host boots, apt installs the list through the
    lab's proxy (services start and are enabled as on any host), the host shuts down cleanly, and what it wrote,
    less what makes a host itself (host keys, hostname, machine id, journal, the proxy line), becomes the layer.
    A host booted from it (`up(name, packages=...)`) has the packages installed; provisioning there still runs
    its packages step, which finds them all."""
    pkgs = _packages(packages)
    layer = stack_template_path(pkgs)
    if (layer / _STACK_MARK).exists():
        return layer
    with _lock("stack-template"):
        if (layer / _STACK_MARK).exists():
            return layer
        name = f"stk{stack_template_id(pkgs)[:9]}"
        log(f"lab: building the stack template {layer.name} ({len(pkgs)} packages; once per machine, about a minute)")
        started = time.monotonic()
        host = up(name, log=log)
        try:
            apt = ("export DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=a; "
                   "o='-o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold'; "
                   'apt-get $o update -q && apt-get $o install -y -q --no-install-recommends "$@" && apt-get clean')
            _run(["ssh", *_ssh_opts(host), f"{host.user}@{host.address}", "sh", "-c", _quote(apt), "sh", *pkgs],
                 stdin=subprocess.DEVNULL, timeout=1800)
            shutdown_together([name], grace=60)
            hd = _host_dir(name)
            if _is_mounted(hd / "root"):
                _run(["umount", str(hd / "root")])
            build = layer.with_name(layer.name + ".build")
            shutil.rmtree(build, ignore_errors=True)
            (hd / "upper").rename(build)
        finally:
            with _lock("hosts", namespace().dir):
                _cleanup(name)
        for rel in _HOST_OWN:
            p = build / rel
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            elif p.exists() or p.is_symlink():
                p.unlink()
        for key in (build / "etc/ssh").glob("ssh_host_*"):
            key.unlink()
        (build / _STACK_MARK).write_text(json.dumps(
            {"built": time.time(), "seconds": round(time.monotonic() - started, 1), "base": template_id(),
             "packages": pkgs}))
        build.rename(layer)
        log(f"lab: stack template ready in {time.monotonic() - started:.0f} s")
        return layer


def _quote(script: str) -> str:
    """SCRIPT as one word for the remote shell (ssh joins its arguments into one command line)."""
    return "'" + script.replace("'", "'\\''") + "'"


def _ssh_opts(host: LabHost) -> list[str]:
    known = _host_dir(host.name) / "known_hosts"
    return ["-i", host.private_key_path, "-o", "BatchMode=yes", "-o", f"UserKnownHostsFile={known}",
            "-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=5", "-o", "GlobalKnownHostsFile=/dev/null",
            "-p", str(host.port)]


# ---------------------------------------------------------------------------------------------
# bridge, forwarding guard and apt proxy


def _bridge_exists(ns: Namespace | None = None) -> bool:
    return Path(f"/sys/class/net/{(ns or namespace()).bridge}").exists()


def ensure_network() -> None:
    """The namespace's bridge (nothing forwarded to or from it, no route out) and the apt proxy bound to it."""
    ns = namespace()
    if _global_forwarding() and _nft() is None:  # refuse before anything changes
        raise LabError(_FORWARDING_REFUSAL.format(why="nft is not installed (Debian package nftables: `make setup`)"))
    if not _bridge_exists(ns):
        _run(["ip", "link", "add", ns.bridge, "type", "bridge"])
        _run(["ip", "addr", "add", f"{ns.bridge_address}/{ns.network.prefixlen}", "dev", ns.bridge])
        _run(["ip", "link", "set", ns.bridge, "up"])
    guard_forwarding(ns)
    _ensure_inotify_instances()
    ensure_proxy()


def forwarding_rules(ns: Namespace) -> str:
    """The nftables table that drops whatever would be routed to or from NS's bridge (traffic between
    hosts on the bridge itself is untouched). Replaces only its own table."""
    return (
        f"table inet {ns.nft_table} {{}}\n"
        f"delete table inet {ns.nft_table}\n"
        f"table inet {ns.nft_table} {{\n"
        "  chain forward {\n"
        "    type filter hook forward priority filter - 10; policy accept;\n"
        f'    iifname "{ns.bridge}" oifname != "{ns.bridge}" drop\n'
        f'    oifname "{ns.bridge}" iifname != "{ns.bridge}" drop\n'
        "  }\n"
        "}\n"
    )


def _global_forwarding() -> bool:
    return Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() != "0"


def _nft() -> str | None:
    return shutil.which("nft", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")


def _forwarding_rules_loaded(ns: Namespace) -> bool:
    r = _run([_nft() or "nft", "list", "table", "inet", ns.nft_table], check=False)
    rules = [" ".join(line.split()) for line in r.stdout.splitlines()]
    return (r.returncode == 0 and f'iifname "{ns.bridge}" oifname != "{ns.bridge}" drop' in rules
            and f'oifname "{ns.bridge}" iifname != "{ns.bridge}" drop' in rules)


def guard_forwarding(ns: Namespace | None = None) -> list[str]:
    """Keep NS's hosts from reaching out, with or without global IP forwarding (checked at every `up`).

    The bridge's own `forwarding` flag goes off (the kernel then routes nothing that arrives from it) and an
    nftables table drops what would be routed to or from the bridge (IPv6 too; it holds when something turns
    global forwarding on later and resets the per-bridge flag). Returns what it changed. With global
    forwarding on and no way to install the rule, the lab refuses in one sentence.
    """
    ns = ns or namespace()
    changed = []
    global_on = _global_forwarding()
    knob = Path(f"/proc/sys/net/ipv4/conf/{ns.bridge}/forwarding")
    if knob.exists() and knob.read_text().strip() != "0":
        knob.write_text("0\n")
        changed.append(f"net.ipv4.conf.{ns.bridge}.forwarding=0")
    if _nft() is None:
        if global_on:
            raise LabError(_FORWARDING_REFUSAL.format(why="nft is not installed (Debian package nftables: `make setup`)"))
        return changed  # nothing is routed anywhere while global forwarding is off
    if not _forwarding_rules_loaded(ns):
        r = _run([_nft() or "nft", "-f", "-"], check=False, input=forwarding_rules(ns))
        if r.returncode != 0 or not _forwarding_rules_loaded(ns):
            if global_on:
                why = f"its nftables rule could not be loaded ({' '.join((r.stderr or r.stdout).split())[-200:]})"
                raise LabError(_FORWARDING_REFUSAL.format(why=why))
        else:
            changed.append(f"nftables table inet {ns.nft_table}")
    return changed


_FORWARDING_REFUSAL = "IP forwarding is on and {why}, so the lab cannot keep its hosts from reaching out"


def _drop_forwarding_rules(ns: Namespace) -> None:
    if nft := _nft():
        _run([nft, "delete", "table", "inet", ns.nft_table], check=False)


INOTIFY_INSTANCES = 1024  # each host's systemd holds about 10; Debian's default 128 stops the 13th host booting


def _ensure_inotify_instances() -> None:
    knob = Path("/proc/sys/fs/inotify/max_user_instances")
    try:
        if int(knob.read_text()) < INOTIFY_INSTANCES:
            knob.write_text(f"{INOTIFY_INSTANCES}\n")
    except (OSError, ValueError) as exc:
        raise LabError(f"cannot raise fs.inotify.max_user_instances to {INOTIFY_INSTANCES} ({exc}): "
                       "more than about 12 lab hosts would fail to boot") from None


def _service_pid(service: str) -> int | None:
    """The PID a lab service (proxy, mirror) of this namespace recorded in its folder, if any."""
    try:
        return int((namespace().dir / service / "pid").read_text().strip())
    except (OSError, ValueError):
        return None


def _proxy_dir() -> Path:
    return namespace().dir / "proxy"


def _proxy_pid() -> int | None:
    return _service_pid("proxy")


@world_readable  # the lab builds trees other users of a host must read, whatever the caller's umask
def ensure_proxy() -> None:
    ns = namespace()
    d = _proxy_dir()
    if _pid_alive(_proxy_pid(), "apt-cacher-ng") and _port_open(str(ns.bridge_address), PROXY_PORT):
        return
    for sub in ("cache", "log", "conf"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    (d / "conf/acng.conf").write_text(
        f"CacheDir: {d / 'cache'}\nLogDir: {d / 'log'}\nPidFile: {d / 'pid'}\n"
        f"BindAddress: {ns.bridge_address}\nPort: {PROXY_PORT}\nSocketPath: {d / 'socket'}\n"
        "ExThreshold: 4\nVfilePatternEx: (by-hash/.*|Release|InRelease)$\n"
    )
    (d / "pid").unlink(missing_ok=True)
    # ForeGround=0: apt-cacher-ng daemonizes itself and writes its PID file, which is how we stop it.
    _run(["apt-cacher-ng", "-c", str(d / "conf"), "ForeGround=0"], stdin=subprocess.DEVNULL)
    for _ in range(100):
        if _port_open(str(ns.bridge_address), PROXY_PORT) and _proxy_pid():
            return
        time.sleep(0.05)
    raise LabError(f"the apt proxy did not start on {ns.bridge_address}:{PROXY_PORT}; see {d / 'log'}")


def _port_open(host: str, port: int, timeout: float = 0.3) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


def _stop_pid(pid: int | None, expect: str, grace: float = 15.0) -> None:
    if not _pid_alive(pid, expect):
        return
    assert pid is not None
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        if not _pid_alive(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    for _ in range(100):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        if not _pid_alive(pid):
            return
        time.sleep(0.05)


# ---------------------------------------------------------------------------------------------
# file mirror: what hosts would download from the internet (WordPress releases), served on the bridge


def _mirror_dir() -> Path:
    """The mirror's files, shared by every namespace (each serves them on its own bridge)."""
    return lab_dir() / "mirror"


def _mirror_run_dir() -> Path:
    """This namespace's mirror server: its PID file and log."""
    return namespace().dir / "mirror"


def _mirror_pid() -> int | None:
    return _service_pid("mirror")


def mirror_url(path: str = "") -> str:
    return f"http://{namespace().bridge_address}:{MIRROR_PORT}/{path}"


@world_readable  # the lab builds trees other users of a host must read, whatever the caller's umask
def ensure_mirror() -> dict:
    """Serve the lab's mirror on the bridge; returns the WordPress release's url, sha256 and version."""
    from pressfleet.lab.wpmirror import build_release

    ensure_network()
    ns = namespace()
    files = _mirror_dir() / "files"
    d = _mirror_run_dir()
    d.mkdir(parents=True, exist_ok=True)
    # Under a lab-wide lock (the files are every namespace's): two callers at once (threads, two sessions) would
    # each build an archive, and the second's rename would replace the first's after its sha256 was handed out.
    with _lock("mirror-files"):
        archive, sha256, version = build_release(files)
    with _lock("mirror", ns.dir):
        if not (_pid_alive(_mirror_pid(), "http.server") and _port_open(str(ns.bridge_address), MIRROR_PORT)):
            logf = open(d / "server.log", "ab")
            # The standard library's file server: static files on one address, nothing to configure.
            proc = subprocess.Popen(
                [sys.executable, "-m", "http.server", "--bind", str(ns.bridge_address), "--directory", str(files),
                 str(MIRROR_PORT)],
                stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True,
            )
            logf.close()
            (d / "pid").write_text(str(proc.pid))
            for _ in range(100):
                if _port_open(str(ns.bridge_address), MIRROR_PORT):
                    break
                time.sleep(0.05)
            else:
                raise LabError(f"the lab mirror did not start on {ns.bridge_address}:{MIRROR_PORT}")
    return {"url": mirror_url(archive.name), "sha256": sha256, "version": version}


def publish_component(name: str, data: bytes) -> dict:
    """DATA (a plugin or theme zip a test or benchmark wrote) served by the lab mirror as components/NAME: the
    `url` and `sha256` of its catalogue entry."""
    folder = _mirror_dir() / "files" / "components"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)
    (folder / name).chmod(0o644)
    return {"url": mirror_url(f"components/{name}"), "sha256": hashlib.sha256(data).hexdigest()}


def ensure_catalogue() -> Path:
    """The lab's release catalogue file for this namespace (its mirror's URLs): Debian 12's and 13's WordPress and
    the plugins and themes they ship, all real releases served by the mirror (started here if it is not)."""
    from pressfleet.lab.wpmirror import build_components
    from pressfleet.updates import catalog

    ensure_mirror()
    with _lock("mirror-files"):
        entries = build_components(_mirror_dir() / "files")
    releases = [catalog.Release(e["kind"], e["slug"], e["version"], mirror_url(e["path"]), e["sha256"])
                for e in entries]
    path = namespace().dir / "catalog.json"
    text = catalog.dump(releases)
    if not path.exists() or path.read_text() != text:
        partial = path.with_suffix(".partial")
        partial.write_text(text)
        partial.rename(path)
    return path


# ---------------------------------------------------------------------------------------------
# keys


def lab_key() -> Path:
    """The lab's SSH key pair (created once); its public half is authorized on every lab host."""
    key = lab_dir() / "keys/id_ed25519"
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(key.parent, 0o700)
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "pressfleet-lab", "-f", str(key)])
    return key


def _fingerprint(pub_line: str) -> str:
    proc = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", "-"], input=pub_line, capture_output=True, text=True)
    if proc.returncode != 0:
        raise LabError(f"could not fingerprint host key: {proc.stderr.strip()}")
    return proc.stdout.split()[1]


# ---------------------------------------------------------------------------------------------
# hosts


def hosts_dir() -> Path:
    return namespace().dir / "hosts"


def _host_dir(name: str) -> Path:
    return hosts_dir() / name


def _netns(name: str) -> str:
    return f"{namespace().netns_prefix}{name}"


def _veth(index: int) -> str:
    return f"{namespace().veth_prefix}{index}"


def host_record(name: str) -> LabHost | None:
    """What `up` recorded about host NAME in this namespace (None if there is no such host)."""
    return _read_host(validate_name(name))


def _read_host(name: str) -> LabHost | None:
    try:
        return LabHost(**json.loads((_host_dir(name) / "host.json").read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _allocate_index(name: str) -> int:
    used = set()
    for h in hosts_dir().glob("*/index"):
        if h.parent.name != name:
            with contextlib.suppress(ValueError, OSError):
                used.add(int(h.read_text()))
    for i in range(FIRST_HOST_INDEX, FIRST_HOST_INDEX + MAX_HOSTS):
        if i not in used:
            return i
    raise LabError(f"the lab is full: {MAX_HOSTS} hosts are up")


def _is_mounted(path: Path) -> bool:
    target = str(path)
    with open("/proc/self/mountinfo") as fh:
        return any(line.split()[4] == target for line in fh)


def is_running(name: str) -> bool:
    host = _read_host(name)
    return bool(host and _pid_alive(host.pid, "systemd-nspawn"))


@world_readable  # the lab builds trees other users of a host must read, whatever the caller's umask
def up(name: str, *, wait: float = 60.0, log=print, packages: list[str] | None = None) -> LabHost:
    """Boot a pristine Debian 12 host NAME (or return it if it is already up). With PACKAGES, the host boots
    from the stack template with those packages already installed (built on first need)."""
    preflight()
    validate_name(name)
    existing = _read_host(name)
    if existing and _pid_alive(existing.pid, "systemd-nspawn"):
        return existing
    ensure_template(log=log)
    tpl = template_path()
    lower, template = str(tpl), "pristine"
    if packages:
        layer = ensure_stack_template(packages, log=log)
        lower, template = f"{layer}:{tpl}", layer.name
    key = lab_key()
    lab_ns = namespace()
    with _lock("hosts", lab_ns.dir):
        _cleanup(name)  # a stale half-started or crashed host of that name
        ensure_network()
        hd = _host_dir(name)
        for sub in ("upper", "work", "root"):
            (hd / sub).mkdir(parents=True, exist_ok=True)
        index = _allocate_index(name)
        (hd / "index").write_text(str(index))
    address = str(lab_ns.network.network_address + index)
    root = hd / "root"
    _run(["mount", "-t", "overlay", "overlay", "-o",
          f"lowerdir={lower},upperdir={hd / 'upper'},workdir={hd / 'work'}", str(root)])
    try:
        (root / "etc/hostname").write_text(name + "\n")
        (root / "etc/hosts").write_text(f"127.0.0.1 localhost\n127.0.1.1 {name}\n")
        proxy_line = _apt_proxy_line(lab_ns)  # the template names the default namespace's proxy
        if (root / APT_PROXY_FILE).read_text() != proxy_line:
            (root / APT_PROXY_FILE).write_text(proxy_line)
        ssh_dir = root / "root/.ssh"
        ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        (ssh_dir / "authorized_keys").write_text(Path(str(key) + ".pub").read_text())
        os.chmod(ssh_dir / "authorized_keys", 0o600)
        hostkey = root / "etc/ssh/ssh_host_ed25519_key"
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{name}", "-f", str(hostkey)])
        pub = Path(str(hostkey) + ".pub").read_text().split()
        host_key = f"{pub[0]} {pub[1]}"
        ns = _netns(name)
        veth = _veth(index)
        _run(["ip", "netns", "add", ns])
        _run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "host0", "netns", ns])
        _run(["ip", "link", "set", veth, "master", lab_ns.bridge, "up"])
        _run(["ip", "netns", "exec", ns, "ip", "addr", "add", f"{address}/{lab_ns.network.prefixlen}", "dev", "host0"])
        _run(["ip", "netns", "exec", ns, "ip", "link", "set", "host0", "up"])
        _run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"])
        (hd / "lower").write_text(lower)
        proc = _spawn(name, hd, ns)
        host = LabHost(
            name=name, index=index, address=address, port=22, user="root", private_key_path=str(key),
            host_key=host_key, fingerprint=_fingerprint(host_key), pid=proc.pid, template=template,
        )
        (hd / "host.json").write_text(host.to_json())
        _wait_ssh(host, proc, wait)
        return host
    except BaseException:
        _cleanup(name)
        raise


def _spawn(name: str, hd: Path, ns: str) -> subprocess.Popen:
    """systemd-nspawn booting NAME's mounted root in its network namespace (its console to console.log)."""
    with open(hd / "console.log", "ab") as logf:
        return subprocess.Popen(
            ["systemd-nspawn", "-D", str(hd / "root"), "-b", "-M", name, "--register=no", "--keep-unit",
             "--console=pipe", "--link-journal=no", "--resolv-conf=off", "--timezone=off",
             "--capability=CAP_NET_ADMIN,CAP_SYS_PACCT", f"--network-namespace-path=/run/netns/{ns}"],
            stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True,
        )


def crash(name: str) -> None:
    """Cut NAME's power: its container is killed at once (no shutdown, like a dead server), its disk, address
    and network namespace are kept, so `boot` brings the same server back."""
    preflight()
    validate_name(name)
    with _lock("hosts", namespace().dir):
        host = _read_host(name)
        if host is None or not _pid_alive(host.pid, "systemd-nspawn"):
            raise LabError(f"lab host {name} is not running")
        # The container's init (nspawn's child, PID 1 of its own PID namespace) first: killing it ends every
        # process of the container at once; then nspawn itself.
        with contextlib.suppress(OSError):
            children = Path(f"/proc/{host.pid}/task/{host.pid}/children").read_text().split()
            for child in children:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(child), signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.kill(host.pid, signal.SIGKILL)
        deadline = time.monotonic() + 15
        while _pid_alive(host.pid, "systemd-nspawn") and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(host.pid, os.WNOHANG)
            time.sleep(0.05)
        root = _host_dir(name) / "root"
        if _is_mounted(root):
            if _run(["umount", str(root)], check=False).returncode != 0:
                _run(["umount", "-l", str(root)], check=False)


def boot(name: str, *, wait: float = 60.0) -> LabHost:
    """Boot a crashed NAME again from its own disk (same address and host key)."""
    preflight()
    validate_name(name)
    hd = _host_dir(name)
    host = _read_host(name)
    if host is None or not (hd / "lower").exists():
        raise LabError(f"lab host {name} was never up (or was removed): `lab up {name}` makes a new one")
    if _pid_alive(host.pid, "systemd-nspawn"):
        return host
    root = hd / "root"
    if not _is_mounted(root):
        _run(["mount", "-t", "overlay", "overlay", "-o",
              f"lowerdir={(hd / 'lower').read_text()},upperdir={hd / 'upper'},workdir={hd / 'work'}", str(root)])
    proc = _spawn(name, hd, _netns(name))
    host = LabHost(**{**asdict(host), "pid": proc.pid})
    (hd / "host.json").write_text(host.to_json())
    _wait_ssh(host, proc, wait)
    return host


def _wait_ssh(host: LabHost, proc: subprocess.Popen, wait: float) -> None:
    """Wait until sshd answers with the host's own key (a real SSH handshake, not only an open port)."""
    deadline = time.monotonic() + wait
    known = _host_dir(host.name) / "known_hosts"
    known.write_text(f"{host.address} {host.host_key}\n")
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = (_host_dir(host.name) / "console.log").read_text(errors="replace")[-600:]
            raise LabError(f"lab host {host.name} stopped while booting: {tail}")
        if _port_open(host.address, 22, 0.2):
            r = subprocess.run(
                ["ssh", "-i", host.private_key_path, "-o", "BatchMode=yes", "-o", f"UserKnownHostsFile={known}",
                 "-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=2", "-o", "GlobalKnownHostsFile=/dev/null",
                 "-p", str(host.port), f"{host.user}@{host.address}", "true"],
                capture_output=True, stdin=subprocess.DEVNULL, timeout=10,
            )
            if r.returncode == 0:
                return
        time.sleep(0.05)
    raise LabError(f"lab host {host.name} did not answer SSH within {wait:.0f} s")


def _cleanup(name: str) -> None:
    """Stop NAME's container and remove its mount, namespace, veth and files; safe on partial state."""
    hd = _host_dir(name)
    host = _read_host(name)
    if host:
        _stop_pid(host.pid, "systemd-nspawn")
    root = hd / "root"
    if _is_mounted(root):
        r = _run(["umount", str(root)], check=False)
        if r.returncode != 0:
            _run(["umount", "-l", str(root)], check=False)
    ns = _netns(name)
    if Path(f"/run/netns/{ns}").exists():
        _run(["ip", "netns", "del", ns], check=False)
    with contextlib.suppress(OSError, ValueError):
        veth = _veth(int((hd / "index").read_text()))
        if Path(f"/sys/class/net/{veth}").exists():
            _run(["ip", "link", "del", veth], check=False)
    if hd.exists():
        shutil.rmtree(hd, ignore_errors=True)


def down(name: str) -> bool:
    """Stop lab host NAME (of this namespace) and remove everything it had. Returns whether it existed."""
    preflight()
    validate_name(name)
    existed = _host_dir(name).exists() or Path(f"/run/netns/{_netns(name)}").exists()
    with _lock("hosts", namespace().dir):
        _cleanup(name)
    return existed


def list_hosts() -> list[dict]:
    """This namespace's hosts, with whether each is running."""
    out = []
    if hosts_dir().exists():
        for hd in sorted(hosts_dir().iterdir()):
            host = _read_host(hd.name)
            if host:
                d = asdict(host)
                d["running"] = _pid_alive(host.pid, "systemd-nspawn")
                out.append(d)
    return out


def _host_names(ns: Namespace) -> set[str]:
    """Every host of NS that left a trace: a folder, or a network namespace."""
    names = {p.name for p in hosts_dir().iterdir()} if hosts_dir().exists() else set()
    if Path("/run/netns").exists():
        names |= {p.name[len(ns.netns_prefix):] for p in Path("/run/netns").iterdir()
                  if p.name.startswith(ns.netns_prefix)}
    return names


def shutdown_together(names: list[str], grace: float = 15.0) -> None:
    """Stop these hosts all at once: each host's systemd is asked to power off at the same moment, and those
    still running after GRACE seconds are killed together. A provisioned host can take the whole grace to stop
    its services, so stopping them one after another cost the grace times the number of hosts."""
    pids = []
    for name in names:
        host = _read_host(name)
        if host and _pid_alive(host.pid, "systemd-nspawn"):
            pids.append(host.pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(host.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while pids and time.monotonic() < deadline:
        for pid in pids:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
        pids = [pid for pid in pids if _pid_alive(pid, "systemd-nspawn")]
        time.sleep(0.1)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def down_all(prefix: str = "") -> list[str]:
    """Stop every host of this lab namespace whose name starts with PREFIX (all when empty); when none of the
    namespace's hosts is left, stop its apt proxy, mirror server, forwarding rule and bridge too.

    Only this namespace is touched: `PRESSFLEET_LAB_NAMESPACE=test pressfleet lab down --all` never stops
    the operator's hosts, and a prefix leaves another test session's hosts alone."""
    preflight()
    if prefix and not re.fullmatch(r"[a-z][a-z0-9-]{0,10}", prefix):
        raise LabError(f"host name prefix {prefix!r} is not valid: use lower-case letters, digits or dashes")
    ns = namespace()
    stopped = []
    with _lock("hosts", ns.dir):
        names = sorted(n for n in _host_names(ns) if n.startswith(prefix))
        shutdown_together(names)
        for name in names:
            _cleanup(name)
            stopped.append(name)
        if _host_names(ns):
            return stopped  # another session's hosts still use the bridge, the proxy and the mirror
        veth = re.compile(re.escape(ns.veth_prefix) + r"\d+")
        for link in Path("/sys/class/net").iterdir():
            if veth.fullmatch(link.name):
                _run(["ip", "link", "del", link.name], check=False)
        _stop_pid(_proxy_pid(), "apt-cacher-ng", grace=5)
        (_proxy_dir() / "pid").unlink(missing_ok=True)
        _stop_pid(_mirror_pid(), "http.server", grace=5)
        (_mirror_run_dir() / "pid").unlink(missing_ok=True)
        _drop_forwarding_rules(ns)
        if _bridge_exists(ns):
            _run(["ip", "link", "del", ns.bridge], check=False)
    return stopped
