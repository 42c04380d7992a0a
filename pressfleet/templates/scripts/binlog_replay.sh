#!/bin/bash
# Replay one database's changes from binary logs into another database (pressfleet point-in-time
# recovery, database increments): from POSITION in the first log up to, not including, STOP: a time (UTC,
# "YYYY-MM-DD HH:MM:SS") or "pos:N", a position in the last log.
# Only events of SOURCE_DB are replayed (MariaDB filters on the name before the rewrite), renamed to TARGET_DB.
# Usage: bash -c "$(cat this)" bash SOURCE_DB TARGET_DB POSITION STOP DIR [LOG...]  (no LOG: every file in DIR,
# in name order)
set -euo pipefail
source_db=$1 target_db=$2 pos=$3 stop=$4 dir=$5; shift 5
for d in "$source_db" "$target_db"; do case "$d" in *[!a-z0-9_]*|"") echo "bad database name" >&2; exit 2;; esac; done
files=()
if [ "$#" -eq 0 ]; then set -- $(ls -1 "$dir"); fi  # binary log names have no blanks: mariadb-bin.000042
[ "$#" -gt 0 ] || { echo "no binary logs to replay in $dir" >&2; exit 2; }
for n in "$@"; do
  case "$n" in */*|.*|"") echo "bad binary log name $n" >&2; exit 2;; esac
  if [ -L "$dir/$n" ] || [ ! -f "$dir/$n" ]; then echo "binary log $n is not staged in $dir" >&2; exit 2; fi
  files+=("$dir/$n")
done
case "$stop" in
  pos:*)
    # A last log that ends exactly at the stop position (an increment read up to where the server had written)
    # is replayed to its end: mariadb-binlog would otherwise fail with "Did not reach stop position".
    last=${files[${#files[@]}-1]}
    if [ "$(stat -c %s -- "$last")" = "${stop#pos:}" ]; then until=(); else until=(--stop-position="${stop#pos:}"); fi;;
  *) until=(--stop-datetime="$stop");;
esac
# The replayed changes are new transactions of this server: their old GTID sequence numbers are dropped (the
# server gives them new ones, in order, so a replica never sees a GTID go backwards), and logs that already
# hold such an older replay are still read (--skip-gtid-strict-mode).
TZ=UTC mariadb-binlog --skip-gtid-strict-mode --start-position="$pos" "${until[@]}" \
  --database="$source_db" --rewrite-db="$source_db->$target_db" "${files[@]}" \
  | sed -e 's|^/\*M\?!100001 SET @@session\.gtid_seq_no=[0-9]*\*//\*!\*/;$||' \
  | mariadb --default-character-set=utf8mb4
echo "replayed ${#files[@]} logs"
