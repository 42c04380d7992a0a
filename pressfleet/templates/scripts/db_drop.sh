#!/bin/bash
# Drop one of pressfleet's own staging or scratch databases (pressfleet restores and restore-tests).
# Refused (exit 2): a name without pressfleet's pf_ prefix, and any database a site's wp-config.php on
# this host names, whatever its name.
# Usage: bash -c "$(cat this)" bash DATABASE
set -euo pipefail
db=$1
case "$db" in pf_*) ;; *) echo "refusing to drop database $db: not a pressfleet staging database" >&2; exit 2;; esac
case "$db" in *[!a-z0-9_]*) echo "bad database name" >&2; exit 2;; esac
if grep -qsFx "define( 'DB_NAME', '$db' );" /var/www/*/wp-config.php; then
  echo "refusing to drop database $db: a site's wp-config.php on this host uses it" >&2; exit 2
fi
mariadb -e "DROP DATABASE IF EXISTS \`$db\`"
