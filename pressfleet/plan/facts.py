"""What a server is: OS, kernel, CPUs, memory, disks, key packages, running services.

`parse_host_facts()` reads the output of templates/scripts/host_facts.sh (run on the server as
`sh -s -- PACKAGE...`) into a typed `HostFacts`; `facts_table()` turns it into rows for a Prefect
table artifact. Pure functions: nothing here talks to a server.
"""

from __future__ import annotations

import re
import shlex

from pydantic import BaseModel, Field

from pressfleet.paths import TEMPLATES

SCRIPT = TEMPLATES / "scripts" / "host_facts.sh"

# The packages whose installed version every fact report shows (None = not installed).
KEY_PACKAGES = (
    "nginx",
    "php8.2-fpm",
    "mariadb-server",
    "redis-server",
    "openssh-server",
    "fail2ban",
    "nftables",
    "certbot",
    "systemd",
)

_MARKER_RE = re.compile(r"^@@pressfleet-facts ([a-z-]+)@@$")
REQUIRED_SECTIONS = ("os-release", "hostname", "kernel", "cpus", "meminfo")
OPTIONAL_SECTIONS = ("disks", "packages", "services", "virtualization")
_KNOWN_SECTIONS = set(REQUIRED_SECTIONS) | set(OPTIONAL_SECTIONS) | {"end"}


class FactsParseError(ValueError):
    """The host facts output cannot be read; the message says which part and why."""


class Disk(BaseModel):
    """One mounted filesystem (sizes in bytes)."""

    mount: str
    fstype: str
    size_bytes: int
    used_bytes: int
    avail_bytes: int


class HostFacts(BaseModel):
    """What one server is, as gathered by the host facts script."""

    hostname: str
    os_id: str = Field(description="os-release ID, e.g. 'debian'")
    os_version: str = Field(description="os-release VERSION_ID, e.g. '12'")
    os_pretty_name: str
    kernel: str
    cpus: int
    mem_total_bytes: int
    mem_available_bytes: int
    swap_total_bytes: int
    disks: list[Disk] = Field(default_factory=list)
    packages: dict[str, str | None] = Field(
        default_factory=dict, description="key package -> installed version, None if not installed"
    )
    services: list[str] = Field(
        default_factory=list, description="running systemd services, full unit names ('nginx.service')"
    )
    virtualization: str = Field("unknown", description="systemd-detect-virt: 'none', 'kvm', 'systemd-nspawn', ...")

    def is_running(self, service: str) -> bool:
        """Whether a service is running; 'nginx' and 'nginx.service' both work."""
        unit = service if "." in service else f"{service}.service"
        return unit in self.services

    def root_disk(self) -> Disk | None:
        """The filesystem mounted on /, if it was reported."""
        return next((d for d in self.disks if d.mount == "/"), None)


def host_facts_command(packages: tuple[str, ...] | list[str] = KEY_PACKAGES) -> list[str]:
    """The remote command (as arguments) that runs the facts script fed on stdin."""
    return ["sh", "-s", "--", *packages]


def script_text() -> str:
    """The host facts script, to feed on the remote command's stdin."""
    return SCRIPT.read_text()


def split_sections(text: str) -> dict[str, list[str]]:
    """Split the script's output into {section name: lines}; raise FactsParseError if there are none."""
    if not isinstance(text, str):
        raise FactsParseError(f"host facts output must be text, not {type(text).__name__}")
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for raw in text.splitlines():
        line = raw.rstrip("\r")
        match = _MARKER_RE.match(line.strip())
        if match and match[1] in _KNOWN_SECTIONS:
            current = sections.setdefault(match[1], [])
            continue
        if current is not None and line.strip():
            current.append(line)
    if not sections:
        preview = text.strip()[:80]
        raise FactsParseError(
            "the output holds no host facts sections (no '@@pressfleet-facts ...@@' lines): "
            f"the facts script did not run; output began {preview!r}"
        )
    return sections


def parse_os_release(lines: list[str]) -> dict[str, str]:
    """KEY=value lines of os-release, values unquoted as the shell would."""
    values: dict[str, str] = {}
    for line in lines:
        if "=" not in line or line.lstrip().startswith("#"):
            continue
        key, _, value = line.partition("=")
        try:
            parts = shlex.split(value)
            values[key.strip()] = parts[0] if parts else ""
        except ValueError:
            values[key.strip()] = value.strip().strip("\"'")
    return values


def parse_meminfo(lines: list[str]) -> dict[str, int]:
    """/proc/meminfo as {field: bytes} (kB values multiplied by 1024)."""
    values: dict[str, int] = {}
    for line in lines:
        match = re.match(r"^([A-Za-z0-9_()]+):\s+(\d+)(?:\s+kB)?\s*$", line)
        if match:
            number = int(match[2])
            values[match[1]] = number * 1024 if line.rstrip().endswith("kB") else number
    return values


def parse_disks(lines: list[str]) -> list[Disk]:
    """Lines 'TYPE SIZE USED AVAIL MOUNTPOINT' into Disk models."""
    disks = []
    for line in lines:
        parts = line.split(None, 4)
        if len(parts) != 5 or not all(p.isdigit() for p in parts[1:4]):
            raise FactsParseError(f"disks: cannot read line {line!r} (want TYPE SIZE USED AVAIL MOUNTPOINT)")
        fstype, size, used, avail, mount = parts
        disks.append(Disk(mount=mount, fstype=fstype, size_bytes=int(size), used_bytes=int(used), avail_bytes=int(avail)))
    return disks


def parse_packages(lines: list[str], wanted: tuple[str, ...] | list[str] = KEY_PACKAGES) -> dict[str, str | None]:
    """dpkg-query lines 'NAME STATUS VERSION' into {package: version or None if not installed}.

    Every wanted package gets a key; a package counts as installed only with status "ii"-like
    (second status letter "i"), so removed packages whose config files remain ("rc") are None.
    """
    packages: dict[str, str | None] = {name: None for name in wanted}
    for line in lines:
        parts = line.split()
        if len(parts) < 2:
            raise FactsParseError(f"packages: cannot read line {line!r} (want NAME STATUS VERSION)")
        name, status = parts[0], parts[1]
        version = parts[2] if len(parts) > 2 else None
        installed = len(status) >= 2 and status[1] == "i"
        packages[name] = version if installed and version else None
    return packages


def parse_services(lines: list[str]) -> list[str]:
    """`systemctl list-units --plain --no-legend` lines into sorted unit names."""
    return sorted({line.split()[0] for line in lines if line.split() and line.split()[0].endswith(".service")})


def _one_line(sections: dict[str, list[str]], name: str) -> str:
    lines = sections.get(name) or []
    if len(lines) != 1:
        raise FactsParseError(f"{name}: expected one line, got {len(lines)}")
    return lines[0].strip()


def parse_host_facts(text: str, packages: tuple[str, ...] | list[str] = KEY_PACKAGES) -> HostFacts:
    """Read the host facts script's output into HostFacts.

    The disks, packages, services and virtualization sections may be missing (they default to
    empty / "unknown"); the OS, hostname, kernel, CPU and memory sections must be there. Raises
    FactsParseError naming the section that is missing or unreadable.
    """
    sections = split_sections(text)
    missing = [name for name in REQUIRED_SECTIONS if name not in sections]
    if missing:
        cut = "" if "end" in sections else " (the output was cut off before its end marker)"
        raise FactsParseError(f"host facts output lacks the section(s) {', '.join(missing)}{cut}")

    os_release = parse_os_release(sections["os-release"])
    if not os_release.get("ID"):
        raise FactsParseError("os-release: no ID= line, so the operating system is unknown")

    cpus_text = _one_line(sections, "cpus")
    if not cpus_text.isdigit() or int(cpus_text) < 1:
        raise FactsParseError(f"cpus: expected a positive number, got {cpus_text!r}")

    meminfo = parse_meminfo(sections["meminfo"])
    if "MemTotal" not in meminfo:
        raise FactsParseError("meminfo: no MemTotal line")

    virtualization = "unknown"
    if sections.get("virtualization"):
        virtualization = _one_line(sections, "virtualization")

    return HostFacts(
        hostname=_one_line(sections, "hostname"),
        os_id=os_release["ID"],
        os_version=os_release.get("VERSION_ID", ""),
        os_pretty_name=os_release.get("PRETTY_NAME", os_release.get("NAME", os_release["ID"])),
        kernel=_one_line(sections, "kernel"),
        cpus=int(cpus_text),
        mem_total_bytes=meminfo["MemTotal"],
        mem_available_bytes=meminfo.get("MemAvailable", meminfo.get("MemFree", 0)),
        swap_total_bytes=meminfo.get("SwapTotal", 0),
        disks=parse_disks(sections.get("disks", [])),
        packages=parse_packages(sections.get("packages", []), packages),
        services=parse_services(sections.get("services", [])),
        virtualization=virtualization,
    )


def human_bytes(n: int) -> str:
    """1536 -> '1.5 KiB'."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def facts_table(facts: HostFacts) -> list[dict[str, str]]:
    """Rows {'fact', 'value'} for a Prefect table artifact, in reading order."""
    rows = [
        ("hostname", facts.hostname),
        ("os", f"{facts.os_pretty_name} ({facts.os_id} {facts.os_version})"),
        ("kernel", facts.kernel),
        ("virtualization", facts.virtualization),
        ("cpus", str(facts.cpus)),
        ("memory", f"{human_bytes(facts.mem_total_bytes)} total, {human_bytes(facts.mem_available_bytes)} available"),
        ("swap", human_bytes(facts.swap_total_bytes) if facts.swap_total_bytes else "none"),
    ]
    for disk in facts.disks:
        rows.append((
            f"disk {disk.mount}",
            f"{disk.fstype}: {human_bytes(disk.used_bytes)} used of {human_bytes(disk.size_bytes)}, "
            f"{human_bytes(disk.avail_bytes)} free",
        ))
    for name, version in facts.packages.items():
        rows.append((f"package {name}", version or "not installed"))
    rows.append(("running services", f"{len(facts.services)}: {', '.join(facts.services)}" if facts.services else "none"))
    return [{"fact": fact, "value": value} for fact, value in rows]


def artifact_key(address: str, prefix: str = "host-facts") -> str:
    """A Prefect artifact key for a server: lower-case letters, digits and dashes only."""
    slug = re.sub(r"[^a-z0-9]+", "-", address.lower()).strip("-")
    return f"{prefix}-{slug}" if slug else prefix
