#!/bin/sh
# The database server's instance id, made once and kept in its data folder. A backup's binary-log position
# means something only on the server that wrote it: a reinstalled server or another host has another id.
# Usage: sh -c "$(cat this)" sh DATADIR
set -eu
f="$1/pressfleet-instance-id"
if [ ! -s "$f" ]; then
  umask 077
  cat /proc/sys/kernel/random/uuid > "$f.tmp"
  mv "$f.tmp" "$f"
fi
cat "$f"
