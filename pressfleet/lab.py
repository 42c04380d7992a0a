"""The lab: pristine Debian 12 servers on this one machine.

Each lab host is a real Debian 12 system with systemd as PID 1 (systemd-nspawn), its own network
namespace and address on the lab bridge, and sshd accepting only the lab's key. Hosts are overlay
copies of one template built once with debootstrap, so a host boots to SSH in about a second and
`down` leaves nothing behind.

Network rules the lab keeps: hosts sit on a bridge with no route out and IP forwarding stays off;
apt inside a host reaches the Debian mirror only through an apt-cacher-ng proxy bound to the bridge
address.

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

from pressfleet.paths import lab_dir

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
TEMPLATE_RECIPE_VERSION = "3"

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
def _lock(name: str):
    base = lab_dir()
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


def template_id() -> str:
    recipe = json.dumps([TEMPLATE_RECIPE_VERSION, TEMPLATE_PACKAGES, SSHD_LAB_CONF, _debian_mirror(), PROXY_PORT])
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


def template_path() -> Path:
    return lab_dir() / f"template-{template_id()}"


def ensure_template(log=print) -> Path:
    """Build the pristine Debian 12 template once (debootstrap through the lab proxy) and cache it."""
    tpl = template_path()
    if (tpl / ".pressfleet-template").exists():
        return tpl
    with _lock("template"):
        if (tpl / ".pressfleet-template").exists():
            return tpl
        ensure_network()
        proxy = f"http://{BRIDGE_ADDRESS}:{PROXY_PORT}"
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
        (build / "etc/apt/apt.conf.d/01pressfleet-proxy").write_text(f'Acquire::http::Proxy "{proxy}";\n')
        for key in (build / "etc/ssh").glob("ssh_host_*"):
            key.unlink()  # every host gets its own keys at boot time
        (build / "etc/ssh/sshd_config.d/pressfleet-lab.conf").write_text(SSHD_LAB_CONF)
        (build / "etc/machine-id").write_text("")
        (build / "var/lib/dbus/machine-id").unlink(missing_ok=True)
        shutil.rmtree(build / "var/cache/apt/archives", ignore_errors=True)
        (build / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)
        (build / ".pressfleet-template").write_text(json.dumps({"built": time.time(), "seconds": time.monotonic() - started}))
        build.rename(tpl)
        log(f"lab: template ready in {time.monotonic() - started:.0f} s")
        return tpl


# ---------------------------------------------------------------------------------------------
# bridge and apt proxy


def _bridge_exists() -> bool:
    return Path(f"/sys/class/net/{BRIDGE}").exists()


def ensure_network() -> None:
    """The lab bridge (no forwarding, no route out) and the apt proxy bound to it."""
    if not _bridge_exists():
        _run(["ip", "link", "add", BRIDGE, "type", "bridge"])
        _run(["ip", "addr", "add", f"{BRIDGE_ADDRESS}/{NETWORK.prefixlen}", "dev", BRIDGE])
        _run(["ip", "link", "set", BRIDGE, "up"])
    if Path("/proc/sys/net/ipv4/ip_forward").read_text().strip() != "0":
        raise LabError("IP forwarding is on: the lab refuses to run because its hosts must not reach out")
    _ensure_inotify_instances()
    ensure_proxy()


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
    """The PID a lab service (proxy, mirror) recorded in its folder, if any."""
    try:
        return int((lab_dir() / service / "pid").read_text().strip())
    except (OSError, ValueError):
        return None


def _proxy_dir() -> Path:
    return lab_dir() / "proxy"


def _proxy_pid() -> int | None:
    return _service_pid("proxy")


def ensure_proxy() -> None:
    d = _proxy_dir()
    if _pid_alive(_proxy_pid(), "apt-cacher-ng") and _port_open(str(BRIDGE_ADDRESS), PROXY_PORT):
        return
    for sub in ("cache", "log", "conf"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    (d / "conf/acng.conf").write_text(
        f"CacheDir: {d / 'cache'}\nLogDir: {d / 'log'}\nPidFile: {d / 'pid'}\n"
        f"BindAddress: {BRIDGE_ADDRESS}\nPort: {PROXY_PORT}\nSocketPath: {d / 'socket'}\n"
        "ExThreshold: 4\nVfilePatternEx: (by-hash/.*|Release|InRelease)$\n"
    )
    (d / "pid").unlink(missing_ok=True)
    # ForeGround=0: apt-cacher-ng daemonizes itself and writes its PID file, which is how we stop it.
    _run(["apt-cacher-ng", "-c", str(d / "conf"), "ForeGround=0"], stdin=subprocess.DEVNULL)
    for _ in range(100):
        if _port_open(str(BRIDGE_ADDRESS), PROXY_PORT) and _proxy_pid():
            return
        time.sleep(0.05)
    raise LabError(f"the apt proxy did not start on {BRIDGE_ADDRESS}:{PROXY_PORT}; see {d / 'log'}")


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
    return lab_dir() / "mirror"


def _mirror_pid() -> int | None:
    return _service_pid("mirror")


def mirror_url(path: str = "") -> str:
    return f"http://{BRIDGE_ADDRESS}:{MIRROR_PORT}/{path}"


def ensure_mirror() -> dict:
    """Serve the lab's mirror on the bridge; returns the WordPress release's url, sha256 and version."""
    from pressfleet.wpmirror import build_release

    ensure_network()
    d = _mirror_dir()
    files = d / "files"
    archive, sha256, version = build_release(files)
    with _lock("mirror"):
        if not (_pid_alive(_mirror_pid(), "http.server") and _port_open(str(BRIDGE_ADDRESS), MIRROR_PORT)):
            logf = open(d / "server.log", "ab")
            # The standard library's file server: static files on one address, nothing to configure.
            proc = subprocess.Popen(
                [sys.executable, "-m", "http.server", "--bind", str(BRIDGE_ADDRESS), "--directory", str(files),
                 str(MIRROR_PORT)],
                stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True,
            )
            logf.close()
            (d / "pid").write_text(str(proc.pid))
            for _ in range(100):
                if _port_open(str(BRIDGE_ADDRESS), MIRROR_PORT):
                    break
                time.sleep(0.05)
            else:
                raise LabError(f"the lab mirror did not start on {BRIDGE_ADDRESS}:{MIRROR_PORT}")
    return {"url": mirror_url(archive.name), "sha256": sha256, "version": version}


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
    return lab_dir() / "hosts"


def _host_dir(name: str) -> Path:
    return hosts_dir() / name


def _netns(name: str) -> str:
    return f"pf-{name}"


def _veth(index: int) -> str:
    return f"pfv{index}"


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


def up(name: str, *, wait: float = 60.0, log=print) -> LabHost:
    """Boot a pristine Debian 12 host NAME (or return it if it is already up)."""
    preflight()
    validate_name(name)
    existing = _read_host(name)
    if existing and _pid_alive(existing.pid, "systemd-nspawn"):
        return existing
    ensure_template(log=log)
    tpl = template_path()
    key = lab_key()
    with _lock("hosts"):
        _cleanup(name)  # a stale half-started or crashed host of that name
        ensure_network()
        hd = _host_dir(name)
        for sub in ("upper", "work", "root"):
            (hd / sub).mkdir(parents=True, exist_ok=True)
        index = _allocate_index(name)
        (hd / "index").write_text(str(index))
    address = str(NETWORK.network_address + index)
    root = hd / "root"
    _run(["mount", "-t", "overlay", "overlay", "-o",
          f"lowerdir={tpl},upperdir={hd / 'upper'},workdir={hd / 'work'}", str(root)])
    try:
        (root / "etc/hostname").write_text(name + "\n")
        (root / "etc/hosts").write_text(f"127.0.0.1 localhost\n127.0.1.1 {name}\n")
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
        _run(["ip", "link", "set", veth, "master", BRIDGE, "up"])
        _run(["ip", "netns", "exec", ns, "ip", "addr", "add", f"{address}/{NETWORK.prefixlen}", "dev", "host0"])
        _run(["ip", "netns", "exec", ns, "ip", "link", "set", "host0", "up"])
        _run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"])
        logf = open(hd / "console.log", "wb")
        proc = subprocess.Popen(
            ["systemd-nspawn", "-D", str(root), "-b", "-M", name, "--register=no", "--keep-unit",
             "--console=pipe", "--link-journal=no", "--resolv-conf=off", "--timezone=off",
             "--capability=CAP_NET_ADMIN,CAP_SYS_PACCT", f"--network-namespace-path=/run/netns/{ns}"],
            stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True,
        )
        logf.close()
        host = LabHost(
            name=name, index=index, address=address, port=22, user="root", private_key_path=str(key),
            host_key=host_key, fingerprint=_fingerprint(host_key), pid=proc.pid,
        )
        (hd / "host.json").write_text(host.to_json())
        _wait_ssh(host, proc, wait)
        return host
    except BaseException:
        _cleanup(name)
        raise


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
    """Stop lab host NAME and remove everything it had. Returns whether it existed."""
    preflight()
    validate_name(name)
    existed = _host_dir(name).exists() or Path(f"/run/netns/{_netns(name)}").exists()
    with _lock("hosts"):
        _cleanup(name)
    return existed


def list_hosts() -> list[dict]:
    out = []
    if hosts_dir().exists():
        for hd in sorted(hosts_dir().iterdir()):
            host = _read_host(hd.name)
            if host:
                d = asdict(host)
                d["running"] = _pid_alive(host.pid, "systemd-nspawn")
                out.append(d)
    return out


def down_all() -> list[str]:
    """Stop every lab host, the apt proxy and the bridge: nothing of the lab stays running."""
    preflight()
    stopped = []
    with _lock("hosts"):
        names = {p.name for p in hosts_dir().iterdir()} if hosts_dir().exists() else set()
        if Path("/run/netns").exists():
            names |= {p.name[3:] for p in Path("/run/netns").iterdir() if p.name.startswith("pf-")}
        for name in sorted(names):
            _cleanup(name)
            stopped.append(name)
        for link in Path("/sys/class/net").iterdir():
            if re.fullmatch(r"pfv\d+", link.name):
                _run(["ip", "link", "del", link.name], check=False)
        _stop_pid(_proxy_pid(), "apt-cacher-ng", grace=5)
        (_proxy_dir() / "pid").unlink(missing_ok=True)
        _stop_pid(_mirror_pid(), "http.server", grace=5)
        (_mirror_dir() / "pid").unlink(missing_ok=True)
        if _bridge_exists():
            _run(["ip", "link", "del", BRIDGE], check=False)
    return stopped
