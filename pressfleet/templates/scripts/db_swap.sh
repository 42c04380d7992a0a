#!/bin/bash
# Swap restored tables into the live database in one atomic RENAME TABLE (pressfleet restores).
# Tables named on stdin (one per line) move from STAGING to LIVE; the live ones they replace, and with
# ALL also every live table the staging database lacks, move to OLD, which is dropped afterwards.
# Usage: bash -c "$(cat this)" bash LIVE STAGING OLD (ALL|SOME)
set -euo pipefail
live=$1 staging=$2 old=$3 mode=$4
for d in "$live" "$staging" "$old"; do case "$d" in *[!a-z0-9_]*|"") echo "bad database name" >&2; exit 2;; esac; done
# Never drop a site's database: only pressfleet's own pf_* names, and none a site's wp-config.php names.
for d in "$staging" "$old"; do
  case "$d" in pf_*) ;; *) echo "refusing to drop database $d: not a pressfleet staging database" >&2; exit 2;; esac
  if grep -qsFx "define( 'DB_NAME', '$d' );" /var/www/*/wp-config.php; then
    echo "refusing to drop database $d: a site's wp-config.php on this host uses it" >&2; exit 2
  fi
done
q() { local s=${1//\`/\`\`}; printf '`%s`' "$s"; }
mariadb -e "DROP DATABASE IF EXISTS \`$old\`; CREATE DATABASE \`$old\`"
mapfile -t wanted
mapfile -t current < <(mariadb --batch --skip-column-names -e \
  "SELECT table_name FROM information_schema.tables WHERE table_schema = '$live'")
renames=()
declare -A want=()
for t in "${wanted[@]}"; do [ -n "$t" ] && want[$t]=1; done
for t in "${current[@]}"; do
  if [ -n "${want[$t]:-}" ] || [ "$mode" = ALL ]; then renames+=("\`$live\`.$(q "$t") TO \`$old\`.$(q "$t")"); fi
done
for t in "${wanted[@]}"; do [ -n "$t" ] && renames+=("\`$staging\`.$(q "$t") TO \`$live\`.$(q "$t")"); done
if [ "${#renames[@]}" -gt 0 ]; then
  sql=$(IFS=,; echo "RENAME TABLE ${renames[*]}")
  mariadb -e "$sql"
fi
mariadb -e "DROP DATABASE IF EXISTS \`$old\`; DROP DATABASE IF EXISTS \`$staging\`"
echo "swapped ${#wanted[@]} tables"
