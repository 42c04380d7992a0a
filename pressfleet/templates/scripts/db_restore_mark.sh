#!/bin/sh
# The in-place restores of one database (pressfleet), kept in MariaDB's data folder beside the server's
# instance id: one line "ID TIME BACKUP" per restore, the newest last. A backup records the newest id;
# when it has changed the next backup is a full one (a restore's staging load and table swap are not in
# the site's binary-log stream, so an incremental could not replay it), and no point-in-time recovery
# rolls a backup forward across a restore.
# Usage: sh -c "$(cat this)" sh DATADIR DATABASE show | add TIME BACKUP
set -eu
dir=$1 db=$2 mode=$3
case "$db" in *[!a-z0-9_]*|"") echo "bad database name" >&2; exit 2;; esac
f="$dir/pressfleet-restores-$db"
if [ -L "$f" ]; then echo "$f is a symbolic link" >&2; exit 2; fi
case "$mode" in
  show) if [ -f "$f" ]; then cat "$f"; fi ;;
  add)
    case "$4$5" in *[!0-9A-Za-z:.+-]*) echo "bad restore record" >&2; exit 2;; esac
    tmp=$(mktemp "$f.XXXXXXXX")   # a fresh name (O_EXCL), never a link someone placed
    line="$(cat /proc/sys/kernel/random/uuid) $4 $5"
    { if [ -f "$f" ]; then tail -n 99 "$f"; fi; echo "$line"; } > "$tmp"
    mv -T -- "$tmp" "$f"
    echo "$line" ;;
  *) echo "bad mode" >&2; exit 2 ;;
esac
