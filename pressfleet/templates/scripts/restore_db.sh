#!/bin/bash
# Load a zstd-compressed dump from stdin into a new, empty staging database (pressfleet restores).
# The live database is not touched here: swapping tables in is a separate, atomic step.
# Usage: bash -c "$(cat this)" bash STAGING_DB
set -euo pipefail
db=$1
case "$db" in *[!a-z0-9_]*|"") echo "bad database name" >&2; exit 2;; esac
mariadb -e "DROP DATABASE IF EXISTS \`$db\`; CREATE DATABASE \`$db\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
zstd -q -dc | mariadb --default-character-set=utf8mb4 --database="$db"
