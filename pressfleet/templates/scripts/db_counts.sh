#!/bin/bash
# Exact row counts of every table of a database, "TABLE N" per line (pressfleet restore checks).
# Usage: bash -c "$(cat this)" bash DATABASE
set -euo pipefail
db=$1
case "$db" in *[!a-z0-9_]*|"") echo "bad database name" >&2; exit 2;; esac
mariadb --batch --skip-column-names -e \
  "SELECT table_name FROM information_schema.tables WHERE table_schema = '$db' AND table_type = 'BASE TABLE'" \
  | while IFS= read -r t; do
      n=$(mariadb --batch --skip-column-names --database="$db" -e "SELECT COUNT(*) FROM \`${t//\`/\`\`}\`")
      printf '%s %s\n' "$t" "$n"
    done
