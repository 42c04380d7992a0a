#!/bin/sh
# The database server's instance id, made once and kept in its data folder. A backup's binary-log position
# means something only on the server that wrote it: a reinstalled server or another host has another id.
# The new id is written under a fresh name (mktemp: O_EXCL, never a link placed in the folder) and renamed.
# Usage: sh -c "$(cat this)" sh DATADIR
set -eu
f="$1/pressfleet-instance-id"
if [ -L "$f" ]; then echo "$f is a symbolic link" >&2; exit 2; fi
if [ ! -s "$f" ]; then
  tmp=$(mktemp "$f.XXXXXXXX")
  cat /proc/sys/kernel/random/uuid > "$tmp"
  mv -T -- "$tmp" "$f"
fi
cat "$f"
