#!/bin/sh
# Remove one site from its host (pressfleet site remove / the remove-site flow), after its final backup.
# Idempotent: every step reads first and skips what is already gone, so a re-run after a half-way failure
# completes. Runs as root on a host where the site's PHP was untrusted: nothing here follows a link the site's
# user could have placed (rm never follows links on its way down, -P tests refuse a linked top folder) and
# nothing outside the site's own names and paths is touched. Every argument is checked against a strict class
# before use; the caller (tasks/remove.py) validated them too.
#
# Usage: sh -c "$(cat this)" sh SITE PHP_VERSION TLS_MODE DOMAIN [ALIAS...]
#   SITE             the site name (its user, group, pool, database, database user)
#   PHP_VERSION      e.g. 8.2
#   TLS_MODE         self-signed | provided | acme (acme: certbot's certificate for DOMAIN is deleted)
#   DOMAIN ALIAS...  the site's server names (its /etc/hosts line)
# Prints one line per thing removed.
set -euf  # no globbing: names come from checked arguments only
fail() { echo "refused: $*" >&2; exit 3; }
[ $# -ge 4 ] || fail "usage: SITE PHP_VERSION TLS_MODE DOMAIN [ALIAS...]"
site=$1 php=$2 tls=$3; shift 3
case "$site" in ""|[!a-z]*|*[!a-z0-9_]*) fail "bad site name";; esac
[ ${#site} -le 31 ] || fail "bad site name"
case "$php" in [0-9].[0-9]|[0-9].[0-9][0-9]) ;; *) fail "bad PHP version";; esac
case "$tls" in self-signed|provided|acme) ;; *) fail "bad TLS mode";; esac
for name in "$@"; do
  case "$name" in ""|.*|*..*|*[!a-z0-9.-]*) fail "bad domain";; esac
done
domain=$1
said() { echo "$*"; }
# The database goes too: with MariaDB down nothing is removed at all (a half-removed site could not be backed up).
if command -v mariadb >/dev/null && ! systemctl is-active --quiet mariadb; then
  fail "MariaDB is not running, so the database of $site cannot be removed: start it, then run again (nothing was removed)"
fi

# A path that must be a plain folder or absent (never a link) before root works inside it.
plain_dir_or_absent() {
  if [ -L "$1" ]; then fail "$1 is a link: nothing there was removed"; fi
  if [ -e "$1" ] && [ ! -d "$1" ]; then fail "$1 is not a folder: nothing there was removed"; fi
}
# rm -f a file or link in a root-owned folder (a link is removed, never followed).
drop() { for p in "$@"; do if [ -e "$p" ] || [ -L "$p" ]; then rm -f -- "$p"; said "removed $p"; fi; done; }
# Files directly in FOLDER whose names start with PREFIX (rotated logs: PREFIX, PREFIX.1, PREFIX.2.gz...).
drop_rotated() {
  folder=$1 prefix=$2
  [ -d "$folder" ] && [ ! -L "$folder" ] || return 0
  find "$folder" -mindepth 1 -maxdepth 1 \( -type f -o -type l \) \( -name "$prefix" -o -name "$prefix.*" \) \
    -print -delete | sed 's/^/removed /'
}

# 1. nginx stops serving the site: the enabling link, the vhost, its headers snippet; checked, then reloaded.
changed_nginx=""
for p in "/etc/nginx/sites-enabled/$site.conf" "/etc/nginx/sites-available/$site.conf" \
         "/etc/nginx/snippets/pressfleet-headers-$site.conf"; do
  if [ -e "$p" ] || [ -L "$p" ]; then drop "$p"; changed_nginx=1; fi
done
if [ -n "$changed_nginx" ] && command -v nginx >/dev/null; then
  nginx -t >/dev/null 2>&1 || fail "nginx -t fails without the site's vhost (its vhost files are gone, nothing else was removed): fix nginx, then run again"
  if systemctl is-active --quiet nginx; then systemctl reload nginx; fi
fi

# 2. WordPress's scheduled tasks: the timer and service units.
unit="pressfleet-wp-cron-$site"
if [ -e "/etc/systemd/system/$unit.timer" ] || [ -e "/etc/systemd/system/$unit.service" ]; then
  systemctl disable --now "$unit.timer" >/dev/null 2>&1 || true
  systemctl stop "$unit.service" >/dev/null 2>&1 || true
  drop "/etc/systemd/system/$unit.timer" "/etc/systemd/system/$unit.service"
  systemctl daemon-reload
fi

# 3. The PHP-FPM pool (and the record pressfleet keeps of the site): php-fpm checked, then reloaded; with no
# pool left it is stopped (it will not run without one; the next provisioning starts it).
pool="/etc/php/$php/fpm/pool.d/$site.conf"
# the pools that stay: every pool file but pressfleet's global settings and this site's own
remaining=0
if [ -d "/etc/php/$php/fpm/pool.d" ]; then
  remaining=$(find "/etc/php/$php/fpm/pool.d" -mindepth 1 -maxdepth 1 -name '*.conf' ! -name '00-pressfleet-global.conf' \
    ! -name "$site.conf" | wc -l)
fi
if [ -e "$pool" ] || [ -L "$pool" ]; then
  drop "$pool"
  if [ "$remaining" -gt 0 ]; then
    "php-fpm$php" -t >/dev/null 2>&1 || fail "php-fpm$php -t fails without the site's pool: fix PHP-FPM, then run again"
    if systemctl is-active --quiet "php$php-fpm"; then systemctl reload "php$php-fpm"; fi
  else
    systemctl stop "php$php-fpm" && said "stopped php$php-fpm (no pool left)"
  fi
fi
drop "/run/php/php$php-fpm-$site.sock" "/run/php/php$php-fpm-$site.status.sock" "/etc/pressfleet/sites/$site.json"

# 4. Whatever still runs as the site's user (a long PHP request, a cron run) ends before its files go.
if id -u "$site" >/dev/null 2>&1; then
  home=$(getent passwd "$site" | cut -d: -f6)
  [ "$home" = "/var/www/$site" ] || fail "user $site's home is $home, not /var/www/$site: not a pressfleet site's user, left alone"
  i=0
  while pgrep -u "$site" >/dev/null 2>&1; do
    pkill -KILL -u "$site" || true
    i=$((i + 1)); [ $i -lt 50 ] || fail "processes of $site keep running"
    sleep 0.2
  done
fi

# 5. The database and its user (and pressfleet's own staging copies of it); kept out of the binary log.
if command -v mariadb >/dev/null; then
  systemctl is-active --quiet mariadb || fail "MariaDB is not running, so the database of $site cannot be removed: start it, then run again"
  exists=$(mariadb --batch --skip-column-names <<SQL
SELECT (SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name IN ('$site', 'pf_stage_$site', 'pf_old_$site'))
     + (SELECT COUNT(*) FROM mysql.user WHERE User = '$site' AND Host = 'localhost');
SQL
)
  if [ "$exists" != 0 ]; then
    mariadb --batch <<SQL
SET SESSION sql_log_bin = 0;
DROP DATABASE IF EXISTS \`$site\`;
DROP DATABASE IF EXISTS \`pf_stage_$site\`;
DROP DATABASE IF EXISTS \`pf_old_$site\`;
DROP USER IF EXISTS '$site'@'localhost';
SQL
    said "removed database and database user $site"
  fi
  datadir=$(mariadb --batch --skip-column-names -e 'SELECT @@datadir' | sed 's:/*$::')
  case "$datadir" in /*) drop "$datadir/pressfleet-restores-$site";; esac
fi

# 6. The site's folder: web root, wp-config.php, logs, tmp, the release record. /var/www is root's, so the
# folder itself cannot be a planted link (checked anyway); rm never follows a link inside it.
plain_dir_or_absent "/var/www/$site"
if [ -d "/var/www/$site" ]; then
  rm -rf --one-file-system -- "/var/www/$site"
  said "removed /var/www/$site"
fi

# 7. Its logs: nginx's access and error logs and PHP's slow log, rotated copies included.
drop_rotated /var/log/nginx "$site.access.log"
drop_rotated /var/log/nginx "$site.error.log"
drop_rotated /var/log "php$php-fpm-$site.slow.log"

# 8. Its cached pages: tasks/remove.py runs purge_site_pages.sh before this script.

# 9. Its certificate, when pressfleet made it: the self-signed or provided copy under /etc/ssl/pressfleet/SITE,
# or certbot's for the domain (ACME).
plain_dir_or_absent "/etc/ssl/pressfleet/$site"
if [ -d "/etc/ssl/pressfleet/$site" ]; then rm -rf -- "/etc/ssl/pressfleet/$site"; said "removed /etc/ssl/pressfleet/$site"; fi
if [ "$tls" = acme ] && [ -e "/etc/letsencrypt/renewal/$domain.conf" ] && command -v certbot >/dev/null; then
  certbot delete --non-interactive --cert-name "$domain" >/dev/null 2>&1 && said "removed certbot's certificate $domain"
fi

# 10. Its /etc/hosts line (the site's names resolve to the host itself), matched by its whole tag.
if grep -Eq "[[:space:]]# pressfleet:$site\$" /etc/hosts; then
  grep -Ev "[[:space:]]# pressfleet:$site\$" /etc/hosts > /etc/hosts.pressfleet-new || true
  cat /etc/hosts.pressfleet-new > /etc/hosts; rm -f /etc/hosts.pressfleet-new
  said "removed the /etc/hosts line of $domain"
fi

# 11. The site's system user and group, last (the files above were theirs).
if id -u "$site" >/dev/null 2>&1; then userdel "$site"; said "removed user $site"; fi
if getent group "$site" >/dev/null; then groupdel "$site"; said "removed group $site"; fi

# 12. With no site left, the log rotation file of the sites goes too (otherwise a remaining site's
# provisioning renders it again from the sites that stay).
if [ "$remaining" -eq 0 ]; then drop /etc/logrotate.d/pressfleet-sites; fi
exit 0
