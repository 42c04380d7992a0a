#!/bin/bash
# Load a zstd-compressed dump from stdin into a new, empty staging database (pressfleet restores).
# The live database is not touched here: swapping tables in is a separate, atomic step.
# Usage: bash -c "$(cat this)" bash STAGING_DB
set -euo pipefail
db=$1
case "$db" in *[!a-z0-9_]*|"") echo "bad database name" >&2; exit 2;; esac
# Never drop a site's database: only pressfleet's own pf_* names, and none a site's wp-config.php names.
for d in "$db"; do
  case "$d" in pf_*) ;; *) echo "refusing to drop database $d: not a pressfleet staging database" >&2; exit 2;; esac
  if grep -qsFx "define( 'DB_NAME', '$d' );" /var/www/*/wp-config.php; then
    echo "refusing to drop database $d: a site's wp-config.php on this host uses it" >&2; exit 2
  fi
done
mariadb -e "DROP DATABASE IF EXISTS \`$db\`; CREATE DATABASE \`$db\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
zstd -q -dc | mariadb --default-character-set=utf8mb4 --database="$db"
