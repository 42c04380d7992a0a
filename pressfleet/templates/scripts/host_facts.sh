# pressfleet host facts: prints what a server is, in delimited sections.
#
# Run as:  sh -s -- PACKAGE... < host_facts.sh    (one SSH connection, one command)
# The positional arguments are the Debian packages whose installed version to report.
# Read-only: it changes nothing on the server. Parsed by pressfleet.plan.facts.parse_host_facts.
# Each section starts with a line "@@pressfleet-facts NAME@@"; the last line is
# "@@pressfleet-facts end@@", so a cut-off output is detected.

LC_ALL=C
export LC_ALL
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH

section() {
    printf '\n@@pressfleet-facts %s@@\n' "$1"
}

section os-release
if [ -r /etc/os-release ]; then
    cat /etc/os-release
elif [ -r /usr/lib/os-release ]; then
    cat /usr/lib/os-release
fi

section hostname
uname -n

section kernel
uname -r

section cpus
nproc 2>/dev/null || getconf _NPROCESSORS_ONLN

section meminfo
cat /proc/meminfo

# Real filesystems, one per line: TYPE SIZE USED AVAIL MOUNTPOINT (bytes; the mount point last, as
# it may hold spaces). RAM-backed and pseudo filesystems are left out. overlay is kept: inside a
# container the root filesystem is an overlay. Mount points that are not directories (files
# bind-mounted by a container runtime, such as /etc/hosts) are left out too.
section disks
df -P -B1 -T -x tmpfs -x devtmpfs -x squashfs -x ramfs -x efivarfs 2>/dev/null |
while read -r dev fstype size used avail capacity mount; do
    [ "$dev" = "Filesystem" ] && continue
    [ -n "$mount" ] && [ -d "$mount" ] || continue
    printf '%s %s %s %s %s\n' "$fstype" "$size" "$used" "$avail" "$mount"
done

# One line per package that dpkg knows: NAME STATUS VERSION (status "ii" = installed).
section packages
if command -v dpkg-query >/dev/null 2>&1 && [ "$#" -gt 0 ]; then
    dpkg-query -W -f='${Package} ${db:Status-Abbrev} ${Version}\n' "$@" 2>/dev/null
fi

section services
if command -v systemctl >/dev/null 2>&1; then
    systemctl list-units --type=service --state=running --no-legend --plain --no-pager 2>/dev/null
fi

section virtualization
virt=$(systemd-detect-virt 2>/dev/null)
printf '%s\n' "${virt:-unknown}"

section end
exit 0
