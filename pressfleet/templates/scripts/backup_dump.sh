#!/bin/bash
# Dump one database for a backup (pressfleet): a consistent InnoDB snapshot without table locks
# (--single-transaction), one row per INSERT so rows can be counted exactly on the way, zstd-compressed
# to stdout. On stderr, after the dump: "PRESSFLEET rows `table` N" for every table and, when the
# binary log is on, "PRESSFLEET binlog FILE POS" (the snapshot's position, for point-in-time recovery).
# Usage: bash -c "$(cat this)" bash DATABASE
set -euo pipefail
db=$1
tmp=$(mktemp -d /run/pressfleet-dump.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
mkfifo "$tmp/rows"
awk '
  /^INSERT INTO `/ { n[$3]++; next }
  /^CREATE TABLE `/ { if (!($3 in n)) n[$3] = 0; next }
  /^-- CHANGE MASTER TO MASTER_LOG_FILE=/ {
    if (match($0, /MASTER_LOG_FILE=.[^'"'"']*/)) f = substr($0, RSTART + 17, RLENGTH - 17)
    if (match($0, /MASTER_LOG_POS=[0-9]+/)) p = substr($0, RSTART + 15, RLENGTH - 15)
  }
  END { for (t in n) print "PRESSFLEET rows", t, n[t]; if (f != "") print "PRESSFLEET binlog", f, p }
' < "$tmp/rows" > "$tmp/counts" &
counter=$!
binlog=()
if [ "$(mariadb --batch --skip-column-names -e 'SELECT @@log_bin')" = 1 ]; then binlog=(--master-data=2); fi
mariadb-dump --single-transaction --quick --skip-extended-insert --no-autocommit --hex-blob \
  --default-character-set=utf8mb4 --routines --triggers --skip-lock-tables "${binlog[@]}" -- "$db" \
  | tee "$tmp/rows" | zstd -q -3 -T0 -c
wait "$counter"
cat "$tmp/counts" >&2
