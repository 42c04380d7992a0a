# pressfleet metrics collection: one sample of a server's vital signs, in delimited sections.
#
# Run as:  sh -s -- STATUS_PORT [SITE DOMAIN CERT VHOST ERRLOG]... < collect_metrics.sh
# (one SSH connection, one command). STATUS_PORT is the loopback-only nginx status server
# (stub_status at /nginx-status, PHP-FPM pool status at /fpm-status-SITE). Each site is five
# arguments: its name (also its Linux user), domain, TLS certificate file, enabled nginx vhost file and
# PHP error log ("-": none); a site whose vhost file is not on this host is skipped. Read-only: it changes nothing on the server.
# Parsed by pressfleet.metrics.collect.parse_metrics. Each section starts with a line
# "@@pressfleet-metrics NAME [ARG]@@"; a service that is not installed prints no section at all,
# and the last line is "@@pressfleet-metrics end@@", so a cut-off output is detected.

LC_ALL=C
export LC_ALL
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH

status_port=${1:-8081}
[ "$#" -gt 0 ] && shift

section() {
    printf '\n@@pressfleet-metrics %s@@\n' "$*"
}

have() {
    command -v "$1" >/dev/null 2>&1
}

# Every probe of a service runs under a time limit, so one hung service never holds the round.
limit() {
    if have timeout; then timeout 5 "$@"; else "$@"; fi
}

fetch() {
    curl -sS --max-time 5 --noproxy '*' "$1" 2>/dev/null
}

section cpus
nproc 2>/dev/null || getconf _NPROCESSORS_ONLN

start=$(cut -d' ' -f1 /proc/uptime)
section cpu1
grep '^cpu ' /proc/stat

section loadavg
cat /proc/loadavg

section meminfo
cat /proc/meminfo

# Real filesystems, as in host_facts.sh: TYPE SIZE USED AVAIL MOUNTPOINT (bytes), then the same for
# inodes: TYPE INODES IUSED IFREE MOUNTPOINT. RAM-backed and pseudo filesystems are left out.
section df
df -P -B1 -T -x tmpfs -x devtmpfs -x squashfs -x ramfs -x efivarfs -x iso9660 -x udf 2>/dev/null |
while read -r dev fstype size used avail capacity mount; do
    [ "$dev" = "Filesystem" ] && continue
    [ -n "$mount" ] && [ -d "$mount" ] || continue
    printf '%s %s %s %s %s\n' "$fstype" "$size" "$used" "$avail" "$mount"
done
section dfi
df -P -i -T -x tmpfs -x devtmpfs -x squashfs -x ramfs -x efivarfs -x iso9660 -x udf 2>/dev/null |
while read -r dev fstype inodes iused ifree capacity mount; do
    [ "$dev" = "Filesystem" ] && continue
    [ -n "$mount" ] && [ -d "$mount" ] || continue
    printf '%s %s %s %s %s\n' "$fstype" "$inodes" "$iused" "$ifree" "$mount"
done

section netdev
cat /proc/net/dev

if have nginx && have curl; then
    section nginx
    fetch "http://127.0.0.1:${status_port}/nginx-status"
fi

if have mariadb || have mysql; then
    client=mariadb
    have mariadb || client=mysql
    section mariadb-status
    limit "$client" --connect-timeout=3 -N -B -e 'SHOW GLOBAL STATUS' 2>/dev/null
    section mariadb-sizes
    limit "$client" --connect-timeout=3 -N -B -e \
        'SELECT table_schema, COALESCE(SUM(data_length + index_length), 0) FROM information_schema.tables GROUP BY table_schema' \
        2>/dev/null
fi

if have redis-cli; then
    section redis
    # as pressfleet's Redis admin (its password is root-only on the host; `default` is off)
    if [ -r /etc/pressfleet/redis-admin.password ]; then
        (REDISCLI_AUTH=$(cat /etc/pressfleet/redis-admin.password); export REDISCLI_AUTH  # environment, not argv
         limit redis-cli --no-auth-warning --user pf_admin -h 127.0.0.1 -p 6379 INFO 2>/dev/null) | tr -d '\r'
    else
        limit redis-cli -h 127.0.0.1 -p 6379 INFO 2>/dev/null | tr -d '\r'
    fi
fi

while [ "$#" -ge 5 ]; do
    site=$1 domain=$2 cert=$3 vhost=$4 errlog=$5
    shift 5
    [ -e "$vhost" ] || continue
    section site "$site"
    if have curl; then
        # Through nginx on the host itself, with the site's own name for SNI and Host; -k because the
        # certificate's trust is not what is measured here (its expiry is, below).
        printf 'http %s\n' "$(curl -ksS -o /dev/null --max-time 10 --noproxy '*' \
            --resolve "$domain:443:127.0.0.1" -w '%{http_code} %{time_starttransfer}' \
            "https://$domain/" 2>/dev/null)"
    fi
    if [ -r "$cert" ] && have openssl; then
        printf 'cert %s\n' "$(openssl x509 -noout -enddate -in "$cert" 2>/dev/null)"
    fi
    # A WordPress network (its vhost says so): each subsite's address, as WordPress holds it (wp_blogs of the
    # site's database, named as the site: a-z, 0-9, _), probed like the main site (the first 20). The rows are the
    # site's own (its PHP can write them): only a name the vhost serves is probed, always on this host's nginx.
    if grep -q '^# pressfleet-network:' "$vhost" 2>/dev/null && have mariadb && have curl; then
        case "$site" in *[!a-z0-9_]*|"") ;; *)
        limit mariadb --batch --skip-column-names -e "SELECT domain, path FROM \`$site\`.wp_blogs WHERE blog_id <> 1
            AND deleted = 0 AND archived = 0 AND spam = 0 ORDER BY blog_id LIMIT 20" 2>/dev/null |
        while read -r d p; do
            case "$d" in ""|*[!a-z0-9.-]*|.*|*..*) continue;; esac
            case "$p" in /|/*/) ;; *) continue;; esac
            case "$p" in *[!a-z0-9/-]*|*//*) continue;; esac
            case "$d" in "$domain"|*."$domain") ;; *) grep -qxF "    server_name $d;" "$vhost" || continue;; esac
            printf 'subsite %s%s %s\n' "$d" "$p" "$(curl -ksS -o /dev/null --max-time 2 --noproxy '*' \
                --connect-to "::127.0.0.1:443" -w '%{http_code} %{time_starttransfer}' "https://$d$p" 2>/dev/null)"
        done;;
        esac
    fi
    # The error log is the site's own (its PHP can replace it with a symlink to anything, and write anything
    # into it): it is read as the site's user, never by root (setpriv: no PAM session per site and round); the
    # last 256 KiB, only lines that start as PHP's fatal errors do, every other byte than printable ASCII
    # made '?' (no forged section markers). Only root can take the site's identity: anyone else gets no section.
    if [ "$errlog" != "-" ] && [ "$(id -u)" = 0 ] && have setpriv && id -u "$site" >/dev/null 2>&1; then
        section fatal "$site"
        limit setpriv --reuid="$site" --regid="$site" --init-groups -- tail -c 262144 -- "$errlog" 2>/dev/null |
            LC_ALL=C tr -c '[:print:]\n' '?' |
            grep -a '^\[[0-9][0-9]-[A-Z][a-z][a-z]-[0-9]* [0-9:]*[^]]*\] PHP Fatal error' | tail -n 50
    fi
    if have nginx && have curl; then
        section php "$site"
        fetch "http://127.0.0.1:${status_port}/fpm-status-${site}?json"
        printf '\n'
    fi
done

# CPU: the second sample at least a second after the first (the work above usually covers it).
now=$(cut -d' ' -f1 /proc/uptime)
rest=$(awk -v s="$start" -v n="$now" 'BEGIN { w = 1.0 - (n - s); if (w > 0.05) printf "%.2f", w; else print 0 }')
[ "$rest" = 0 ] || sleep "$rest"
section cpu2
grep '^cpu ' /proc/stat
section end
exit 0
